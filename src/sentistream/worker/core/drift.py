"""Drift signals: does the model still understand what it reads? Cheap enough for every
micro-batch (a few list operations a tweet; no per-tweet metric call).

For each model role (``primary``, ``shadow``) the worker exports, per micro-batch:

* the tokens it read and those outside the model's vocabulary (``..._tokens_total``,
  ``..._oov_tokens_total``): their ratio is the vocabulary-drift figure;
* each tweet's length in tokens and the model's confidence (its top probability), as
  histograms filled once a batch;
* tweets less confident than the reference's 10th percentile (``..._low_confidence_total``;
  about 10 % on data like the reference);
* the label mix over the last :data:`WINDOW_LABELS` labels and its population stability index
  (PSI) against the reference mix, per model version.

The *reference* is the same figures on the model's own held-out split, measured at export
and stored in the manifest (:class:`DriftReference`); it is exported beside the live values
(``sentistream_drift_reference_*``), so dashboards and alerts compare the two and their
thresholds follow the model rather than being set by hand.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import Counter as Tally
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "CONFIDENCE_BUCKETS",
    "LENGTH_BUCKETS",
    "WINDOW_LABELS",
    "BatchHistogram",
    "DriftMetrics",
    "DriftReference",
    "DriftSignals",
    "psi",
]

#: Id of the out-of-vocabulary token in every model's vocabulary (the text pipeline's).
OOV_ID = 1
#: Labels in the moving window the live label mix is taken over.
WINDOW_LABELS = 5_000
#: Below this share a class counts as this share in the PSI (an absent class is not infinite).
PSI_FLOOR = 1e-4

CONFIDENCE_BUCKETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
LENGTH_BUCKETS = (1, 2, 4, 6, 8, 10, 12, 16, 20, 25, 30, 40, 50)


@dataclass(frozen=True)
class DriftReference:
    """The drift figures on the model's held-out split (in the manifest's ``drift``)."""

    oov_token_ratio: float
    label_share: Mapping[str, float]
    confidence_p10: float
    mean_tokens: float
    tweets: int = 0


def psi(live: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """Population stability index of ``live`` shares against ``reference`` shares."""
    total = 0.0
    for name in reference.keys() | live.keys():
        actual = max(live.get(name, 0.0), PSI_FLOOR)
        expected = max(reference.get(name, 0.0), PSI_FLOOR)
        total += (actual - expected) * math.log(actual / expected)
    return total


class BatchHistogram(Collector):
    """A Prometheus histogram filled a batch at a time (``observe_many``), with one label,
    ``role``. prometheus_client's Histogram takes a lock per observation; this takes one per
    batch."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self._name, self._doc = name, documentation
        self._bounds = tuple(buckets)
        self._series: dict[str, tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, role: str, values: Sequence[float]) -> None:
        # map and Counter run in C: no Python-level step per value.
        counts = Tally(map(partial(bisect_left, self._bounds), values))
        total = sum(values)
        with self._lock:
            series = self._series.setdefault(role, ([0] * (len(self._bounds) + 1), [0.0]))
            for index, count in counts.items():
                series[0][index] += count
            series[1][0] += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._doc, labels=["role"])
        with self._lock:
            snapshot = {role: (list(c), s[0]) for role, (c, s) in self._series.items()}
        for role, (counts, total) in snapshot.items():
            cumulative, running = [], 0
            for bound, count in zip((*map(str, self._bounds), "+Inf"), counts, strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric([role], cumulative, total)
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._doc, labels=["role"])


@dataclass(frozen=True)
class DriftMetrics:
    tokens: Counter
    oov_tokens: Counter
    low_confidence: Counter
    label_share: Gauge
    label_mix_psi: Gauge
    confidence: BatchHistogram
    length: BatchHistogram
    reference_oov_token_ratio: Gauge
    reference_label_share: Gauge
    reference_confidence_floor: Gauge
    reference_mean_tokens: Gauge

    @classmethod
    def declare(cls, registry: CollectorRegistry) -> DriftMetrics:
        def counter(name: str, doc: str) -> Counter:
            return Counter(f"sentistream_drift_{name}", doc, ["role"], registry=registry)

        def gauge(name: str, doc: str, labels: Sequence[str] = ("role",)) -> Gauge:
            return Gauge(f"sentistream_drift_{name}", doc, labels, registry=registry)

        return cls(
            tokens=counter("tokens", "Tokens the model read (after cutting to maxlen)."),
            oov_tokens=counter("oov_tokens", "Of those, tokens outside the model's vocabulary."),
            low_confidence=counter(
                "low_confidence_tweets",
                "Tweets whose top probability is below the reference's 10th percentile "
                "(about 10 % of tweets like the reference's).",
            ),
            label_share=gauge(
                "label_share",
                f"Share of each label among the last {WINDOW_LABELS:,} labels.",
                ("role", "label"),
            ),
            label_mix_psi=gauge(
                "label_mix_psi",
                f"Population stability index of the last {WINDOW_LABELS:,} labels' mix against "
                "the reference mix (NaN without a reference).",
                ("role", "version"),
            ),
            confidence=BatchHistogram(
                "sentistream_drift_confidence",
                "The model's top probability per tweet.",
                CONFIDENCE_BUCKETS,
                registry,
            ),
            length=BatchHistogram(
                "sentistream_drift_tokens_per_tweet",
                "Tweet length in tokens (after cutting to maxlen).",
                LENGTH_BUCKETS,
                registry,
            ),
            reference_oov_token_ratio=gauge(
                "reference_oov_token_ratio", "Out-of-vocabulary token ratio on the reference."
            ),
            reference_label_share=gauge(
                "reference_label_share", "Share of each label on the reference.", ("role", "label")
            ),
            reference_confidence_floor=gauge(
                "reference_confidence_floor",
                "10th percentile of the top probability on the reference (below: low confidence).",
            ),
            reference_mean_tokens=gauge(
                "reference_mean_tokens", "Mean tweet length in tokens on the reference."
            ),
        )


@dataclass
class DriftSignals:
    """The drift figures of one model role, fed a micro-batch at a time."""

    metrics: DriftMetrics
    role: str = "primary"
    window: int = WINDOW_LABELS
    reference: DriftReference | None = None
    version: str = ""
    _batches: deque[Tally[str]] = field(default_factory=deque, init=False)
    _mix: Tally[str] = field(default_factory=Tally, init=False)
    _in_window: int = field(default=0, init=False)

    def use_model(self, version: str, reference: DriftReference | None) -> None:
        """A model was swapped in: its reference, and a fresh window."""
        self.version, self.reference = version, reference
        self._batches.clear()
        self._mix.clear()
        self._in_window = 0
        m, role = self.metrics, self.role
        for counter in (m.tokens, m.oov_tokens, m.low_confidence):
            counter.labels(role=role)  # each series exists at 0 from the start
        if reference is None:
            for gauge in (m.reference_oov_token_ratio, m.reference_confidence_floor):
                gauge.labels(role=role).set(math.nan)
            m.reference_mean_tokens.labels(role=role).set(math.nan)
            return
        m.reference_oov_token_ratio.labels(role=role).set(reference.oov_token_ratio)
        m.reference_confidence_floor.labels(role=role).set(reference.confidence_p10)
        m.reference_mean_tokens.labels(role=role).set(reference.mean_tokens)
        for label, share in reference.label_share.items():
            m.reference_label_share.labels(role=role, label=label).set(share)

    def observe(
        self,
        ids: Sequence[list[int]],
        confidences: Sequence[float],
        labels: Sequence[str],
    ) -> None:
        """One micro-batch: each tweet's token ids, top probability and label."""
        if not ids:
            return
        m, role = self.metrics, self.role
        lengths = list(map(len, ids))
        m.tokens.labels(role=role).inc(sum(lengths))
        m.oov_tokens.labels(role=role).inc(sum(map(list.count, ids, repeat(OOV_ID))))
        m.length.observe_many(role, lengths)
        m.confidence.observe_many(role, confidences)
        if self.reference is not None:
            floor = self.reference.confidence_p10
            m.low_confidence.labels(role=role).inc(len([c for c in confidences if c < floor]))
        self._add_labels(labels)

    def _add_labels(self, labels: Sequence[str]) -> None:
        batch = Tally(labels)
        self._batches.append(batch)
        self._mix.update(batch)
        self._in_window += len(labels)
        while self._in_window - sum(self._batches[0].values()) >= self.window:
            oldest = self._batches.popleft()
            self._mix.subtract(oldest)
            self._in_window -= sum(oldest.values())
        shares = {label: count / self._in_window for label, count in self._mix.items()}
        m, role = self.metrics, self.role
        for label, share in shares.items():
            m.label_share.labels(role=role, label=label).set(share)
        value = math.nan if self.reference is None else psi(shares, self.reference.label_share)
        m.label_mix_psi.labels(role=role, version=self.version).set(value)
