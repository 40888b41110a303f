"""The fake transactional source and sink over one :class:`FakeTransactionLog`."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sentistream.worker.core.exactly_once import HeldDelivery
from sentistream.worker.core.messages import InputRecord
from sentistream.worker.core.ports import (
    Outgoing,
    SinkUnavailable,
    TopicPartition,
    TransactionAborted,
    TransactionFailed,
)
from tests.unit.fakes.sink import FakeSink, Sent
from tests.unit.fakes.source import FakeRecord, FakeSource

__all__ = ["FakeTransactionLog", "FakeTransactionalSink", "FakeTransactionalSource"]

# -- transactions (exactly-once) -------------------------------------------------------------


@dataclass
class FakeTransactionLog:
    """What the broker holds for one group and its output: the transactions that committed
    (what a ``read_committed`` reader sees, one list of records per transaction), those that
    were aborted, and the group's committed offsets."""

    committed: list[list[Sent]] = field(default_factory=list)
    aborted: list[list[Sent]] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)

    def visible(self, topic: str | None = None) -> list[Sent]:
        """Records a ``read_committed`` reader sees, in order."""
        return [s for txn in self.committed for s in txn if topic is None or s.topic == topic]


class FakeTransactionalSource(FakeSource):
    """A :class:`FakeSource` that keeps every record fed, so :meth:`rewind` can read again
    from the offsets committed in ``log``; ``rebalance()`` moves the group to a new
    generation (as a rebalance on kafka-python's IO thread would, at any moment)."""

    def __init__(self, log: FakeTransactionLog, records: Iterable[FakeRecord] = ()) -> None:
        self.log = log
        self.every: dict[TopicPartition, list[FakeRecord]] = {}
        self.generation = 1
        self._batch_generations: set[int] = set()
        self.rewinds = 0
        self.fail_rewind = False
        super().__init__(records)

    def feed(self, *records: FakeRecord) -> None:
        super().feed(*records)
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self.every.setdefault(tp, []).append(record)

    def poll(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        polled = super().poll(timeout_s, max_records)
        if polled:
            self._batch_generations.add(self.generation)
        return polled

    def rebalance(self) -> None:
        """A new generation; as on every (eager) reassignment, each partition's position
        goes back to its committed offset."""
        self.generation += 1
        self._requeue_from_committed()

    def batch_group(self) -> object | None:
        seen, self._batch_generations = self._batch_generations, set()
        if len(seen) > 1:
            return None
        return seen.pop() if seen else self.generation

    def still_current(self, group: object) -> bool:
        return group == self.generation

    def rewind(self, timeout_s: float) -> None:
        if self.fail_rewind:
            raise TransactionFailed("cannot read the committed offsets (fake)")
        self.rewinds += 1
        self._batch_generations = set()
        self._requeue_from_committed()

    def _requeue_from_committed(self) -> None:
        for tp in self.assignment():
            start = self.log.offsets.get(tp, 0)
            self._queues[tp] = deque(r for r in self.every.get(tp, []) if r.offset >= start)


class FakeTransactionalSink(FakeSink):
    """A transactional producer over a :class:`FakeTransactionLog`.

    Sends made inside a transaction are acknowledged at once (``auto_ack``) but reach
    ``log.committed`` only when the transaction commits; their callbacks run then. ``fail_next``
    makes the next call of a step fail as kafka-python's would:

    * ``fail_next["begin"]``: ``begin`` raises it (kafka-python refuses to begin only from a fatal
      state, so use :class:`TransactionFailed`);
    * ``fail_next["send"]``: the next send's produce request fails: its delivery fails and the
      transaction is left in an abortable error (later sends fail at once, as
      kafka-python's ``send`` refuses them);
    * ``fail_next["send_offsets"]``, ``fail_next["commit"]``, ``fail_next["abort"]``: that
      call raises it.
    """

    def __init__(
        self, log: FakeTransactionLog, partition_counts: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(auto_ack=True, partition_counts=partition_counts)
        self.log = log
        self.fail_next: dict[str, BaseException] = {}
        self.in_transaction = False
        self.calls: list[str] = []
        self._records: list[Sent] = []
        self._held: list[HeldDelivery] = []
        self._offsets: dict[TopicPartition, int] = {}
        self._error: BaseException | None = None

    def _failure(self, step: str) -> BaseException | None:
        self.calls.append(step)
        return self.fail_next.pop(step, None)

    def begin(self) -> None:
        failure = self._failure("begin")
        if failure is not None:
            raise failure
        assert not self.in_transaction, "kafka-python: invalid transition to IN_TRANSACTION"
        self.in_transaction = True
        self._records, self._held, self._offsets, self._error = [], [], {}, None

    def send(self, record: Outgoing) -> HeldDelivery:  # type: ignore[override]  # its deliveries are the transactional sink's
        if not self.in_transaction:
            raise SinkUnavailable("kafka-python: Cannot call send in state READY (fake)")
        if self._error is not None:
            held = HeldDelivery(None, self._error)
        else:
            failure = self.fail_next.pop("send", None)
            self.auto_ack = failure is None
            delivery = super().send(record)
            self.auto_ack = True
            if failure is not None:
                delivery.failure(failure)
                self._error = failure
            self._records.append(self.sent[-1])
            held = HeldDelivery(delivery)
        self._held.append(held)
        return held

    def send_offsets(
        self, offsets: Mapping[TopicPartition, int], group: object, timeout_s: float
    ) -> None:
        assert self.in_transaction
        failure = self._failure("send_offsets") or self._abortable()
        if failure is not None:
            raise failure
        self._offsets.update(offsets)

    def commit(self, timeout_s: float) -> None:
        assert self.in_transaction
        failure = self._failure("commit") or self._abortable()
        if failure is not None:
            if isinstance(failure, TransactionAborted):
                self._error = failure
            raise failure
        self.log.committed.append(self._records)
        self.log.offsets.update(self._offsets)
        self.in_transaction = False
        for held in self._held:
            held.release()

    def abort(self, timeout_s: float) -> None:
        for held in self._held:
            held.discard()
        failure = self._failure("abort")
        if failure is not None:
            raise failure
        self.log.aborted.append(self._records)
        self.in_transaction = False

    def _abortable(self) -> TransactionAborted | None:
        if self._error is None:
            return None
        return TransactionAborted(f"the transaction already failed: {self._error!r}")
