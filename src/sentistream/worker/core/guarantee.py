"""The processing guarantee: when consumed offsets may be committed.

:class:`AtLeastOnce` commits a batch's offsets only once every label and dead letter produced
from it has been acknowledged by Kafka, and only in order (never past an earlier batch still
in flight). A crash at any moment repeats work; it never skips it. The exactly-once variant
(:mod:`sentistream.worker.core.exactly_once`: offsets sent inside a producer transaction) has
the same methods, so the loop never branches on which one it runs.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sentistream.worker.core.deadline import Deadline
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.ports import (
    Clock,
    CommitDeferred,
    CommitRefused,
    Delivery,
    DeliveryFailed,
    Sink,
    Source,
    TopicPartition,
    failure_of,
)

__all__ = ["COMMIT_TIMEOUT_S", "AtLeastOnce", "ProcessingGuarantee", "ShutdownReport"]

log = logging.getLogger(__name__)

#: A commit Kafka cannot take within this long is retried at the next commit interval, so an
#: outage never holds the loop (and /healthz) for kafka-python's default timeouts.
COMMIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ShutdownReport:
    """What a stop achieved; the process exits 0 only when :attr:`clean`."""

    undelivered: int
    """Records produced (or in hand) that Kafka did not acknowledge in time or refused."""
    committed: bool
    """Every acknowledged offset was committed."""
    detail: str = ""

    @property
    def clean(self) -> bool:
        return self.undelivered == 0 and self.committed


class ProcessingGuarantee(Protocol):
    """When consumed offsets are committed; :class:`AtLeastOnce` and
    :class:`~sentistream.worker.core.exactly_once.ExactlyOnce`."""

    @property
    def in_flight(self) -> int: ...
    @property
    def oldest_unacked_at(self) -> float | None:
        """Monotonic time the oldest batch still awaiting acknowledgement was produced."""

    @property
    def pipelinable(self) -> bool:
        """Whether batches may be polled while earlier ones are still being inferred."""

    def track(self, offsets: Mapping[TopicPartition, int], deliveries: list[Delivery]) -> None:
        """A batch was published: its next offsets and one delivery per record."""

    def poll(self, now: float) -> None: ...
    def close(self, deadline: Deadline) -> ShutdownReport: ...


@dataclass
class _Pending:
    """A batch whose records were produced but not all acknowledged yet."""

    offsets: dict[TopicPartition, int]
    deliveries: list[Delivery]
    produced_at: float

    def done(self) -> bool:
        return all(d.done() for d in self.deliveries)

    def failure(self) -> BaseException | None:
        for d in self.deliveries:
            failure = failure_of(d)
            if failure is not None:
                return failure
        return None


class AtLeastOnce:
    def __init__(
        self,
        source: Source,
        sink: Sink,
        metrics: WorkerMetrics,
        clock: Clock,
        *,
        commit_interval_s: float = 0.5,
    ) -> None:
        self.source = source
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.commit_interval_s = commit_interval_s
        self._pending: deque[_Pending] = deque()
        self._in_flight = 0
        self._committable: dict[TopicPartition, int] = {}
        self._last_commit_at = clock.monotonic()

    @property
    def pipelinable(self) -> bool:
        """Offsets are committed per batch in order, whatever was polled since."""
        return True

    @property
    def in_flight(self) -> int:
        """Records produced whose batch is not fully acknowledged yet."""
        return self._in_flight

    @property
    def oldest_unacked_at(self) -> float | None:
        return self._pending[0].produced_at if self._pending else None

    def track(self, offsets: Mapping[TopicPartition, int], deliveries: list[Delivery]) -> None:
        self._pending.append(_Pending(dict(offsets), deliveries, self.clock.monotonic()))
        self._in_flight += len(deliveries)

    def poll(self, now: float) -> None:
        """Collect acknowledged batches; commit them if the commit interval has passed.

        Raises :class:`DeliveryFailed` when Kafka refused a record after the producer's
        retries: nothing from that batch on is committed, and a restart redoes it.
        """
        failure = self._collect()
        if failure is not None:
            raise DeliveryFailed(f"Kafka did not acknowledge a record: {failure}") from failure
        if self._committable and now - self._last_commit_at >= self.commit_interval_s:
            self._commit(COMMIT_TIMEOUT_S)

    def close(self, deadline: Deadline) -> ShutdownReport:
        """Flush, then commit every acknowledged batch, all by ``deadline``."""
        flushed = self.sink.flush(deadline.left())
        failure = self._collect()
        committed = self._commit(deadline.left())
        if not committed and self._committable and deadline.left() > 0:
            committed = self._commit(deadline.left())  # one retry if time is left
        details = []
        if failure is not None:
            details.append(f"Kafka refused a record: {failure}")
        elif not flushed:
            details.append("deliveries still pending when the shutdown timeout passed")
        if not committed:
            details.append("the final offset commit did not go through")
        return ShutdownReport(self._in_flight, committed, "; ".join(details))

    def _collect(self) -> BaseException | None:
        """Move the offsets of fully acknowledged batches, oldest first, to the commit set;
        stop at a failed one and return its failure."""
        while self._pending and self._pending[0].done():
            failure = self._pending[0].failure()
            if failure is not None:
                return failure
            batch = self._pending.popleft()
            self._in_flight -= len(batch.deliveries)
            self._committable.update(batch.offsets)
        return None

    def _commit(self, timeout_s: float) -> bool:
        """Commit what is committable; True when nothing acknowledged is left uncommitted."""
        self._last_commit_at = self.clock.monotonic()
        if not self._committable:
            return True
        offsets, self._committable = self._committable, {}
        try:
            dropped = self.source.commit(offsets, timeout_s)
        except CommitRefused as exc:
            self.metrics.commit_failures.labels(reason="rebalance").inc()
            log.warning("offset commit refused, the partitions' new owner redoes them: %s", exc)
            return False
        except CommitDeferred as exc:
            self.metrics.commit_failures.labels(reason="unavailable").inc()
            log.warning("offset commit failed, retrying in %.1f s: %s", self.commit_interval_s, exc)
            for tp, offset in offsets.items():  # later offsets, if any arrived, win
                self._committable.setdefault(tp, offset)
            return False
        if len(dropped) < len(offsets):
            self.metrics.commits.inc()
        if dropped:
            self.metrics.commit_failures.labels(reason="rebalance").inc()
            log.info(
                "not committing %d partition(s) no longer assigned; their new owner redoes them",
                len(dropped),
            )
            return False
        return True
