"""Exactly-once: each micro-batch's labels, dead letters and input offsets in one transaction.

The same methods as :class:`~sentistream.worker.core.guarantee.AtLeastOnce`, so the loop does not
know which one it runs. A transaction is open from the start and after every commit or abort
(kafka-python's ``begin_transaction`` is local, no round trip), so the publisher's sends of a
batch always land in one. :meth:`ExactlyOnce.track`, called once the batch is published,
commits it: flush, check every delivery, add the offsets with the consumer's group metadata
(so the broker fences a consumer that was rebalanced away, KIP-447), commit. A reader with
``isolation.level=read_committed`` then sees the whole batch, or, if anything failed, none
of it.

What goes wrong, and what happens:

* a record refused, the group rebalanced while the batch was in hand, a partition moved away,
  the broker rejecting the offsets (stale generation): the transaction is aborted, every
  assigned partition is rewound to its last committed offset, and the worker goes on; the
  records are read and labelled again, in a new transaction (``sentistream_transactions_total
  {outcome="aborted"}``);
* fenced by a newer instance with the same ``transactional.id``, the producer in a fatal
  state, or any transactional call not finished within ``timeout_s``:
  :class:`~sentistream.worker.core.ports.TransactionFailed` propagates and the worker exits 1; the
  broker aborts the open transaction when the restarted instance initialises its own (or
  after the transaction timeout).

Nothing is ever skipped silently: a batch is either committed with its offsets or aborted and
read again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError

from sentistream.worker.core.deadline import Deadline
from sentistream.worker.core.guarantee import ShutdownReport
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.ports import (
    Clock,
    Delivered,
    Delivery,
    TopicPartition,
    TransactionAborted,
    TransactionalSink,
    TransactionalSource,
    TransactionFailed,
    failure_of,
)

__all__ = ["ExactlyOnce", "HeldDelivery"]

log = logging.getLogger(__name__)


class ExactlyOnce:
    def __init__(
        self,
        source: TransactionalSource,
        sink: TransactionalSink,
        metrics: WorkerMetrics,
        clock: Clock,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.source = source
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.timeout_s = timeout_s
        self.sink.begin()

    @property
    def pipelinable(self) -> bool:
        """No: a batch's transaction takes the group generation of the polls since the
        previous batch, and an abort rewinds the consumer; batches polled while an earlier one
        is inferred would be mixed up in both."""
        return False

    @property
    def in_flight(self) -> int:
        """Nothing outlives :meth:`track`: each batch is committed or aborted there."""
        return 0

    @property
    def oldest_unacked_at(self) -> float | None:
        return None

    def track(self, offsets: Mapping[TopicPartition, int], deliveries: list[Delivery]) -> None:
        """Commit the batch just published (its sends are in the open transaction), or abort
        it and rewind; then open the next transaction."""
        try:
            self._commit(offsets, deliveries)
        except TransactionAborted as exc:
            self._abort_and_rewind(str(exc))
        else:
            self.metrics.commits.inc()
            self.metrics.transactions.labels(outcome="committed").inc()
        self.sink.begin()

    def poll(self, now: float) -> None:
        """Nothing to collect: every batch was settled by :meth:`track`."""

    def close(self, deadline: Deadline) -> ShutdownReport:
        """The open transaction holds nothing (each batch settled in :meth:`track`); the
        sink's ``close`` ends it."""
        return ShutdownReport(0, True)

    def _left(self, deadline: Deadline) -> float:
        """What is left of the transaction's time; :class:`TransactionFailed` once none is."""
        left = deadline.left()
        if left <= 0:
            raise TransactionFailed(f"the transaction did not finish within {self.timeout_s:g} s")
        return left

    def _commit(self, offsets: Mapping[TopicPartition, int], deliveries: list[Delivery]) -> None:
        deadline = Deadline.after(self.timeout_s, self.clock)
        group = self.source.batch_group()
        if group is None or not self.source.still_current(group):
            raise TransactionAborted("the group rebalanced while the batch was in hand")
        moved = set(offsets) - self.source.assignment()
        if moved:
            names = ", ".join(sorted(f"{tp.topic}-{tp.partition}" for tp in moved))
            raise TransactionAborted(f"partitions moved to another worker: {names}")
        if not self.sink.flush(self._left(deadline)):
            raise TransactionFailed(
                f"the batch's records were not acknowledged within {self.timeout_s:g} s"
            )
        for delivery in deliveries:
            failure = failure_of(delivery)
            if failure is not None:
                raise TransactionAborted(f"Kafka refused a record: {failure!r}")
        self.sink.send_offsets(offsets, group, self._left(deadline))
        self.sink.commit(self._left(deadline))

    def _abort_and_rewind(self, why: str) -> None:
        log.warning("aborting the transaction (%s); rewinding to the committed offsets", why)
        self.metrics.transactions.labels(outcome="aborted").inc()
        self.sink.abort(self.timeout_s)
        self.source.rewind(self.timeout_s)


class HeldDelivery(Future[Delivered | None]):
    """A send inside a transaction, as the loop's :class:`Delivery`: it fails as soon as its
    produce request fails (``produced``'s exception; ``error`` for a send refused before any
    request, the transaction having already failed), but succeeds only when the transaction
    commits (:meth:`release`), so callbacks on success count what ``read_committed`` readers
    see; an aborted transaction's deliveries fail with :class:`TransactionAborted`
    (:meth:`discard`), so their callbacks never run."""

    def __init__(self, produced: Delivery | None, error: BaseException | None = None) -> None:
        super().__init__()
        if produced is None:
            if error is None:
                raise ValueError("a delivery or an error")
            self.set_exception(error)
            return
        self._produced = produced
        produced.add_done_callback(self._on_produced)  # on the client's thread

    def _on_produced(self, produced: Delivery) -> None:
        failure = failure_of(produced)
        if failure is not None:
            self._settle(lambda: self.set_exception(failure))

    def release(self) -> None:
        """The transaction committed: succeed with the produced record's result."""
        if not self.done():
            self._produced.add_done_callback(self._on_committed)

    def _on_committed(self, produced: Delivery) -> None:
        if failure_of(produced) is None:
            self._settle(lambda: self.set_result(produced.result()))

    def discard(self) -> None:
        """The transaction was aborted: fail, if not failed already."""
        self._settle(lambda: self.set_exception(TransactionAborted("the transaction aborted")))

    def _settle(self, complete: Callable[[], None]) -> None:
        # Already completed, by the produce failing first (on the client's thread): keep that.
        with contextlib.suppress(InvalidStateError):
            complete()
