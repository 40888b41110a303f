"""The model in use, and a newer one swapped in between two micro-batches.

:class:`ModelSlot` holds the :class:`ServedModel` the worker classifies with. The loop calls
:meth:`ModelSlot.poll` once per step, before a micro-batch is classified; it returns the model
to use from then on when a swap happened. Everything slow happens on a background thread (a
:class:`Runner`): reading ``manifest.json`` to see whether it changed (its sha256 is the
model's *fingerprint*), then loading and verifying the new folder (hashes, graph contract,
cleaning version: whatever the loader checks), then a warm-up batch. The loop thread only looks
whether that work is done, so a reload never stalls serving; and since the swap happens between
two calls of the loop's ``_process``, no micro-batch is ever split across two models.

A check runs every ``interval_s`` seconds (0: never on a timer) and at once after
:meth:`ModelSlot.request_check` (``SIGHUP``). A folder that fails is *refused*: the old model
keeps serving, the log says why, ``sentistream_model_reload_failures_total`` counts it, and the
same manifest is not tried again on the timer (``SIGHUP`` retries it, e.g. once a slow copy
has finished). A model whose labels differ from the served one is refused too: consumers of the
output topic rely on the label set, so changing it takes a restart.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sentistream.manifest import MANIFEST_FILE
from sentistream.worker.core.drift import DriftReference
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.ports import Classifier
from sentistream.worker.core.runners import Runner

__all__ = [
    "WARM_UP_TEXTS",
    "ModelRefused",
    "ModelSlot",
    "ServedModel",
    "manifest_fingerprint",
    "warm_up",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The warm-up batch: ordinary tweets of several lengths, each encoding to some token ids.
WARM_UP_TEXTS = (
    "good morning",
    "I love this so much, best day ever",
    "the train is late again and nobody tells us anything",
    "meh",
    "just finished the report, going home now",
    "worst customer service I have had in years, never again",
    "watching the game tonight with friends",
    "thank you all for the birthday wishes!!",
)
#: Largest distance of a row's probabilities from summing to 1 that warm-up accepts.
SUM_TOLERANCE = 1e-3


class ModelRefused(Exception):  # noqa: N818 - an outcome, not a bug
    """The new model failed warm-up or differs from the served one in a way that matters."""


@dataclass(frozen=True)
class ServedModel:
    classifier: Classifier
    info: Mapping[str, str]
    """``name``, ``version``, ``sha256``: what every output and ``sentistream_model_info`` show."""
    fingerprint: str
    """sha256 of the folder's ``manifest.json``: a new manifest is a new model."""
    folder: Path
    drift_reference: DriftReference | None = None
    """The drift figures on the model's held-out split, from its manifest (older: none)."""


Loader = Callable[[Path], ServedModel]
"""Loads and verifies a model folder (already resolved: no symlink left); raises if it is bad."""


def manifest_fingerprint(folder: Path) -> str:
    """sha256 of ``folder/manifest.json``; the manifest names every other file's sha256."""
    return hashlib.sha256((folder / MANIFEST_FILE).read_bytes()).hexdigest()


def warm_up(classifier: Classifier, texts: Sequence[str] = WARM_UP_TEXTS) -> None:
    """One micro-batch through the model: one row per text, of finite probabilities in [0, 1]
    summing to 1. Raises :class:`ModelRefused` otherwise (and whatever inference raises)."""
    rows = [ids for ids in (classifier.encode(t) for t in texts) if ids]
    if not rows:
        raise ModelRefused("warm-up: no warm-up text encodes to any token id")
    probabilities = classifier.predict_ids(rows)
    expected = (len(rows), len(classifier.labels))
    if tuple(probabilities.shape) != expected:
        raise ModelRefused(f"warm-up: output shape {probabilities.shape}, expected {expected}")
    for row in probabilities.tolist():
        if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in row):
            raise ModelRefused(f"warm-up: probabilities {row} are not all in [0, 1]")
        if abs(sum(row) - 1.0) > SUM_TOLERANCE:
            raise ModelRefused(f"warm-up: probabilities {row} sum to {sum(row):.4f}, not 1")


def _same_labels(classifier: Classifier, labels: tuple[str, ...]) -> None:
    if tuple(classifier.labels) != labels:
        raise ModelRefused(
            f"labels {list(classifier.labels)} differ from the served model's {list(labels)}; "
            "changing labels takes a restart"
        )


# -- what a check finds -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Unchanged:
    fingerprint: str


@dataclass(frozen=True)
class _Loaded:
    model: ServedModel


@dataclass(frozen=True)
class _Refused:
    fingerprint: str
    folder: Path
    reason: str


_Outcome = _Unchanged | _Loaded | _Refused


class ModelSlot:
    def __init__(
        self,
        current: ServedModel,
        metrics: WorkerMetrics,
        *,
        folder: Path,
        load: Loader,
        runner: Runner,
        interval_s: float,
        now: float,
        fingerprint: Callable[[Path], str] = manifest_fingerprint,
    ) -> None:
        """``folder`` is what ``--model-dir`` names (a folder or a symlink to one); ``now`` is
        the loop clock's monotonic time, the first timed check comes ``interval_s`` later."""
        self.current = current
        self.metrics = metrics
        self.folder = folder
        self.interval_s = interval_s
        self._load = load
        self._runner = runner
        self._fingerprint = fingerprint
        self._forced = False
        self._refused: str | None = None
        self._pending: Future[_Outcome] | None = None
        self._next_check = now + interval_s
        metrics.model.info(dict(current.info))

    def request_check(self) -> None:
        """Check at the next step, even a manifest refused before (safe in a signal handler:
        it only sets a flag)."""
        self._forced = True

    @property
    def busy(self) -> bool:
        """A check or load is running in the background."""
        return self._pending is not None

    def poll(self, now: float) -> ServedModel | None:
        """Start a check when one is due; return the new model if one is ready to use."""
        if self._pending is None and (
            self._forced or (self.interval_s > 0 and now >= self._next_check)
        ):
            forced, self._forced = self._forced, False
            self._next_check = now + self.interval_s
            known, refused = self.current.fingerprint, None if forced else self._refused
            labels = tuple(self.current.classifier.labels)
            self._pending = self._runner.submit(lambda: self._check(known, refused, labels, forced))
        if self._pending is None or not self._pending.done():
            return None
        outcome = self._pending.result()  # _check returns every failure as _Refused
        self._pending = None
        return self._settle(outcome)

    # -- on the background thread --------------------------------------------------------

    def _check(
        self, known: str, refused: str | None, labels: tuple[str, ...], forced: bool
    ) -> _Outcome:
        # Follow a "current" symlink once, so every file comes from the same folder even if
        # the link moves while this load runs.
        folder = self.folder.resolve()
        try:
            fingerprint = self._fingerprint(folder)
        except OSError as exc:
            return _Refused(f"unreadable:{folder}", folder, f"cannot read the manifest: {exc}")
        if fingerprint in (known, refused):
            if forced:
                log.info("model check: %s is the model in use, nothing to do", folder)
            return _Unchanged(fingerprint)
        try:
            model = self._load(folder)
            _same_labels(model.classifier, labels)
            warm_up(model.classifier)
        except Exception as exc:  # any failure refuses this model; the old one keeps serving
            return _Refused(fingerprint, folder, f"{type(exc).__name__}: {exc}")
        if model.fingerprint != fingerprint:
            return _Refused(fingerprint, folder, "the manifest changed while it was loaded")
        return _Loaded(model)

    # -- back on the loop thread ---------------------------------------------------------

    def _settle(self, outcome: _Outcome) -> ServedModel | None:
        if isinstance(outcome, _Unchanged):
            return None
        if isinstance(outcome, _Refused):
            self._refused = outcome.fingerprint
            self.metrics.model_reload_failures.inc()
            log.error(
                "refusing the model in %s: %s; still serving %s %s (sha256 %s…)",
                outcome.folder,
                outcome.reason,
                self.current.info.get("name"),
                self.current.info.get("version"),
                self.current.info.get("sha256", "")[:12],
            )
            return None
        old, new = self.current, outcome.model
        self.current = new
        self._refused = None
        self.metrics.model_reloads.inc()
        self.metrics.model.info(dict(new.info))
        log.info(
            "model %s %s (sha256 %s…) from %s now serves, replacing %s %s (sha256 %s…)",
            new.info.get("name"),
            new.info.get("version"),
            new.info.get("sha256", "")[:12],
            new.folder,
            old.info.get("name"),
            old.info.get("version"),
            old.info.get("sha256", "")[:12],
        )
        return new
