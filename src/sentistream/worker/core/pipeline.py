"""The inference stage: micro-batches go to the model on a thread of its own, and come back to
the loop in the order they were submitted.

ONNX Runtime releases the GIL while it runs, so while one batch is inferred the loop's thread
can poll, decode and encode the next and publish the previous. :class:`InferenceStage` holds
at most ``depth`` batches that are submitted and not yet taken back (being inferred, or
inferred and waiting for the loop); :meth:`InferenceStage.take` hands back only finished
batches at the head of the line, so a batch that finishes early waits for the ones before it
and outputs keep the order of the polls.

What runs the inference is a :class:`Runner`: :class:`ThreadRunner` (one thread) in the
worker, :class:`InlineRunner` (at once, on the caller's thread) for the synchronous path
(``pipeline_depth`` 0 or 1) and in tests. Whatever the inference raises is kept in its
future and raised again on the loop's thread by :meth:`InferenceStage.take`, so the loop
handles it as if it had run the model itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

from sentistream.worker.core.classify import Classify, Inferred, PreparedBatch, Verdict
from sentistream.worker.core.runners import Runner

__all__ = ["Finished", "InferenceStage"]

T = TypeVar("T")


@dataclass(frozen=True)
class Finished:
    """A batch back from inference, with its verdicts and the model that made them."""

    batch: PreparedBatch
    verdicts: list[Verdict]
    model_info: dict[str, str]


@dataclass
class _Submitted:
    batch: PreparedBatch
    model_info: dict[str, str]
    future: Future[list[Inferred]] = field(repr=False)


class InferenceStage:
    """At most ``depth`` batches between :meth:`submit` and :meth:`take`, handed back in
    order. Call every method from the loop's thread; only the runner's jobs run elsewhere."""

    def __init__(self, classify: Classify, runner: Runner, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.classify = classify
        self.runner = runner
        self.depth = depth
        self._queue: deque[_Submitted] = deque()
        self._records = 0

    def __len__(self) -> int:
        """Batches submitted and not taken back yet."""
        return len(self._queue)

    @property
    def records(self) -> int:
        """Records in those batches (they count as in flight)."""
        return self._records

    @property
    def full(self) -> bool:
        return len(self._queue) >= self.depth

    def submit(self, batch: PreparedBatch, model_info: Mapping[str, str]) -> None:
        """Start inferring ``batch`` (encoded with ``batch.classifier``; ``model_info`` names
        that model on its outputs). The caller makes room first: never past ``depth``."""
        if self.full:
            raise RuntimeError(f"the inference stage already holds {self.depth} batch(es)")
        future = self.runner.submit(lambda: self.classify.infer(batch))
        self._queue.append(_Submitted(batch, dict(model_info), future))
        self._records += len(batch)

    @property
    def busy(self) -> bool:
        """The model is still inferring one of the batches submitted."""
        return any(not item.future.done() for item in self._queue)

    def head_done(self) -> bool:
        return bool(self._queue) and self._queue[0].future.done()

    def wait(self, timeout_s: float | None) -> bool:
        """Wait for the oldest batch's inference (None: as long as it takes); True when it is
        done, or when nothing is pending."""
        if not self._queue:
            return True
        return self.runner.wait(self._queue[0].future, timeout_s)

    def take(self) -> Finished | None:
        """The oldest batch if its inference is done (taken out), else None: a batch that
        finished early waits for the ones before it.

        Raises what the inference raised (and :class:`ModelBroken` from the failure
        tracker), on the caller's thread; the failed batch is taken out first.
        """
        if not self.head_done():
            return None
        item = self._queue.popleft()
        self._records -= len(item.batch)
        verdicts = self.classify.finish(item.batch, item.future.result())
        return Finished(item.batch, verdicts, item.model_info)
