"""In-memory fakes for the worker loop's ports: no broker, no model, no sleeping.

Each fake records what the loop asked of it, so tests assert on calls (poll timeouts, sends,
commits, classifier batches) rather than on timing. The fakes fail where the real clients
fail: :class:`FakeSink` refuses, synchronously and with the same exception types, what
kafka-python's producer refuses (a null header value, a record with neither key nor value, a
record over ``max_request_size`` by kafka-python's own size estimate); :class:`FakeSource`
returns nothing from paused partitions and does not commit partitions it no longer owns; and
:class:`FakeTransactionalSink` can fail at each step of a transaction (begin, send, send
offsets, commit, abort) the way kafka-python's transactional producer does, with a
:class:`FakeTransactionLog` holding only what committed transactions made visible.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from kafka.errors import MessageSizeTooLargeError
from kafka.record.default_records import DefaultRecordBatchBuilder

from sentistream.worker.core.exactly_once import HeldDelivery
from sentistream.worker.core.loop import DEFAULT_MAX_REQUEST_BYTES
from sentistream.worker.core.messages import HeldRecord, InputRecord
from sentistream.worker.core.ports import (
    CommitDeferred,
    CommitRefused,
    Delivered,
    InferenceError,
    SinkUnavailable,
    SourceFailed,
    TopicPartition,
    TransactionAborted,
    TransactionFailed,
)

__all__ = [
    "FakeClassifier",
    "FakeClock",
    "FakeDelivery",
    "FakeRecord",
    "FakeSink",
    "FakeSource",
    "FakeTransactionLog",
    "FakeTransactionalSink",
    "FakeTransactionalSource",
    "ManualRunner",
    "Sent",
]

#: Partitions of every topic of a :class:`FakeSink` made without ``partition_counts``.
DEFAULT_PARTITIONS = 16


# -- records and the source -----------------------------------------------------------------


FakeRecord = HeldRecord
"""A consumed record (not a fake of behaviour: the record's fields, as the worker reads them)."""


class FakeSource:
    """Records queued per partition; ``poll`` hands out up to ``max_records`` and never waits.

    ``polls`` keeps each ``(timeout_s, max_records)`` asked for, ``commits`` each offsets
    mapping committed. ``refuse_commits`` makes that many next commits raise
    :class:`CommitRefused` (recorded in ``refused``), ``unavailable_commits`` likewise raise
    :class:`CommitDeferred`. ``assigned`` and ``lags`` override the
    default assignment (every partition ever fed) and lag (records still queued). ``paused``
    holds the paused partitions; ``poll`` takes nothing from them. ``commit`` leaves out (and
    returns) partitions not assigned, as the Kafka adapter does. ``rebalance_count`` is
    what ``rebalances`` reports (a test moves it as a group would). ``refuse_polls`` makes
    ``poll`` raise it, as both adapters raise :class:`SourceFailed` when Kafka refuses the
    consumer for good (kafka-python: a non-retriable error out of every poll, e.g.
    ``GroupAuthorizationFailedError``; confluent-kafka: a fatal or authorization error).
    """

    def __init__(self, records: Iterable[FakeRecord] = ()) -> None:
        self._queues: dict[TopicPartition, deque[FakeRecord]] = {}
        self.polls: list[tuple[float, int]] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.refused: list[dict[TopicPartition, int]] = []
        self.refuse_commits = 0
        self.unavailable_commits = 0
        self.assigned: set[TopicPartition] | None = None
        self.lags: dict[TopicPartition, int] | None = None
        self.paused: set[TopicPartition] = set()
        self.commit_timeouts: list[float] = []
        self.rebalance_count = 0
        self.refuse_polls: SourceFailed | None = None
        self.partition_count: int | None = None
        self.closed = False
        self._next_assignment: set[TopicPartition] | None = None
        self.feed(*records)

    def feed(self, *records: FakeRecord) -> None:
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self._queues.setdefault(tp, deque()).append(record)

    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def poll(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        self.polls.append((timeout_s, max_records))
        if self.refuse_polls is not None:
            raise self.refuse_polls
        if self._next_assignment is not None:  # the member rejoins inside poll
            self.assigned, self._next_assignment = self._next_assignment, None
            self.rebalance_count += 1
        out: dict[TopicPartition, list[FakeRecord]] = {}
        room = max_records
        assert max_records > 0, "kafka-python raises ValueError for max_records <= 0"
        for tp, queue in self._queues.items():
            if tp in self.paused or tp not in self.assignment():
                continue
            taken: list[FakeRecord] = []
            while queue and room > 0:
                taken.append(queue.popleft())
                room -= 1
            if taken:
                out[tp] = taken
        return out

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_s: float
    ) -> set[TopicPartition]:
        self.commit_timeouts.append(timeout_s)
        owned = self.assignment()
        dropped = {tp for tp in offsets if tp not in owned}
        offsets = {tp: o for tp, o in offsets.items() if tp in owned}
        if not offsets:
            return dropped
        if self.refuse_commits > 0:
            self.refuse_commits -= 1
            self.refused.append(dict(offsets))
            raise CommitRefused("the group rebalanced (fake)")
        if self.unavailable_commits > 0:
            self.unavailable_commits -= 1
            self.refused.append(dict(offsets))
            raise CommitDeferred("broker unreachable (fake)")
        self.commits.append(dict(offsets))
        return dropped

    def committed(self) -> dict[TopicPartition, int]:
        """The latest committed offset per partition, over all commits."""
        merged: dict[TopicPartition, int] = {}
        for commit in self.commits:
            merged.update(commit)
        return merged

    def assignment(self) -> set[TopicPartition]:
        if self.assigned is not None:
            return set(self.assigned)
        return set(self._queues)

    def rebalances(self) -> int:
        return self.rebalance_count

    def rebalance_to(self, partitions: Collection[TopicPartition]) -> None:
        """The group starts a rebalance that hands this member ``partitions``: as with a real
        group, the member takes them (and counts the rebalance) at its next poll; until then
        it owns what it owned, and Kafka takes its commits (its generation is still current
        while the group prepares the rebalance)."""
        self._next_assignment = set(partitions)

    def input_partitions(self) -> int | None:
        """``partition_count`` if a test set it, else the partitions ever fed."""
        if self.partition_count is not None:
            return self.partition_count
        return len(self._queues) or None

    def lag(self) -> Mapping[TopicPartition, int]:
        if self.lags is not None:
            return dict(self.lags)
        return {tp: len(q) for tp, q in self._queues.items() if tp in self.assignment()}

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self.paused |= set(partitions)

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self.paused -= set(partitions)

    def close(self) -> None:
        self.closed = True


# -- deliveries and the sink ----------------------------------------------------------------


class FakeDelivery(Future[Delivered | None]):
    """A :class:`~sentistream.worker.core.ports.Delivery` the test (or the fake sink)
    completes: :meth:`success` and :meth:`failure`, once, as a client's report would."""

    def success(self, result: Delivered | None) -> None:
        assert not self.done(), "a delivery completes once"
        self.set_result(result)

    def failure(self, exc: BaseException) -> None:
        assert not self.done(), "a delivery completes once"
        self.set_exception(exc)


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int | None
    delivery: FakeDelivery

    def header(self, name: str) -> bytes:
        values = [v for k, v in self.headers if k == name]
        assert len(values) == 1, f"header {name!r}: {values}"
        return values[0]


@dataclass
class FakeSink:
    """Records every send; deliveries stay pending until acknowledged or failed by the test.

    ``send`` raises as kafka-python's ``KafkaProducer.send`` does, before any delivery exists:
    ``TypeError`` for headers that are not ``(str, bytes)`` pairs (a null value), ``ValueError``
    for a record with neither key nor value, ``MessageSizeTooLargeError`` over
    ``max_request_size`` (kafka-python's own estimate). ``unavailable`` makes it raise
    :class:`SinkUnavailable`, as the adapter does when the producer cannot take any record.
    ``refuse`` (a predicate on the :class:`Sent`) refuses chosen records with ``TypeError``.

    ``auto_ack=True`` acknowledges each send at once. ``flush`` acknowledges everything
    pending unless ``hang`` is set (then it returns False with the deliveries still pending,
    as a producer flush that timed out).
    """

    auto_ack: bool = False
    hang: bool = False
    unavailable: bool = False
    max_request_size: int = DEFAULT_MAX_REQUEST_BYTES
    refuse: Callable[[Sent], bool] | None = None
    partition_counts: Mapping[str, int] | None = None
    sent: list[Sent] = field(default_factory=list)
    refused: list[tuple[Sent, BaseException]] = field(default_factory=list)
    flushes: list[float] = field(default_factory=list)
    _next_offset: dict[tuple[str, int], int] = field(default_factory=dict)

    def partitions(self, topic: str) -> int:
        """``partition_counts[topic]``; without ``partition_counts`` every topic exists with
        :data:`DEFAULT_PARTITIONS`. A topic not in it is unknown: :class:`SinkUnavailable`,
        as both sinks say when the metadata has no partitions for it."""
        if self.partition_counts is None:
            return DEFAULT_PARTITIONS
        if topic not in self.partition_counts:
            raise SinkUnavailable(f"no partitions known for {topic} (fake)")
        return self.partition_counts[topic]

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None,
    ) -> FakeDelivery:
        attempt = Sent(topic, key, value, list(headers), partition, FakeDelivery())
        try:
            self._check(attempt)
        except Exception as exc:
            self.refused.append((attempt, exc))
            raise
        self.sent.append(attempt)
        if self.auto_ack:
            self._ack(attempt)
        return attempt.delivery

    def _check(self, attempt: Sent) -> None:
        """kafka-python 3.0's checks, in its order."""
        if self.unavailable:
            raise SinkUnavailable("the producer cannot take records (fake)")
        if attempt.value is None and attempt.key is None:
            raise ValueError("Need at least one: key or value")
        if not all(
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], bytes)
            for item in attempt.headers
        ):
            raise TypeError("All headers items must be (str, bytes) tuples")
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
            attempt.key, attempt.value, attempt.headers
        )
        if size > self.max_request_size:
            raise MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the "
                "maximum request size you have configured with the max_request_size "
                "configuration"
            )
        if attempt.partition is not None and not (
            0 <= attempt.partition < self.partitions(attempt.topic)
        ):
            raise AssertionError("Unrecognized partition")  # kafka-python asserts it
        if self.refuse is not None and self.refuse(attempt):
            raise TypeError("refused by the test")

    def _ack(self, sent: Sent) -> None:
        partition = sent.partition if sent.partition is not None else 0
        offset = self._next_offset.get((sent.topic, partition), 0)  # each partition its own
        self._next_offset[(sent.topic, partition)] = offset + 1
        sent.delivery.success(Delivered(partition, offset))

    def pending(self) -> list[Sent]:
        return [s for s in self.sent if not s.delivery.done()]

    def ack(self, index: int) -> None:
        """Acknowledge the ``index``-th send (0-based, over all sends)."""
        self._ack(self.sent[index])

    def ack_all(self) -> None:
        for sent in self.pending():
            self._ack(sent)

    def fail(self, index: int, exc: BaseException | None = None) -> None:
        """Fail the ``index``-th send (0-based, over all sends)."""
        self.sent[index].delivery.failure(exc or RuntimeError("fake broker said no"))

    def flush(self, timeout_s: float) -> bool:
        self.flushes.append(timeout_s)
        if not self.hang:
            self.ack_all()
        return not self.pending()

    def to(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]


# -- time and the model ---------------------------------------------------------------------


class FakeClock:
    """Both clocks move only when the test calls :meth:`advance`."""

    def __init__(self, monotonic: float = 1_000.0, time: float = 1_700_000_000.0) -> None:
        self._monotonic = monotonic
        self._time = time

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._time

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self._monotonic += seconds
        self._time += seconds


class FakeClassifier:
    """One token id per word; a row with an even number of tokens is positive, odd negative.

    ``fail_on`` (token ids) makes any batch holding one of them raise :class:`InferenceError`;
    ``always_fail`` makes every call raise. ``calls`` keeps each batch it was given.
    """

    labels: tuple[str, ...] = ("negative", "positive")
    POSITIVE: Any = np.array([0.25, 0.75], dtype=np.float32)
    NEGATIVE: Any = np.array([0.8, 0.2], dtype=np.float32)

    def __init__(self, fail_on: Iterable[int] = (), *, always_fail: bool = False) -> None:
        self.fail_on = set(fail_on)
        self.always_fail = always_fail
        self.calls: list[list[list[int]]] = []

    @staticmethod
    def token_id(word: str) -> int:
        return zlib.crc32(word.encode("utf-8")) % 1_000_000 + 1

    def encode(self, text: str) -> list[int]:
        return [self.token_id(word) for word in text.split()]

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        self.calls.append([list(row) for row in ids])
        if self.always_fail:
            raise InferenceError("fake model always fails")
        bad = self.fail_on.intersection(i for row in ids for i in row)
        if bad:
            raise InferenceError(f"fake model chokes on token ids {sorted(bad)}")
        rows = [self.POSITIVE if len(row) % 2 == 0 else self.NEGATIVE for row in ids]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 2), np.float32)

    @classmethod
    def expected_label(cls, text: str) -> str:
        return "positive" if len(text.split()) % 2 == 0 else "negative"


# -- the inference thread ------------------------------------------------------------------

T = TypeVar("T")


class ManualRunner:
    """An inference thread the test drives: a submitted job runs only when the test calls
    :meth:`complete` (any pending job, so jobs can finish out of order), or when the loop
    waits for it: a wait without timeout always (a thread finishes in the end), a wait with
    one only if ``finish_on_wait`` is set; then it and the jobs before it run, as one thread
    would run them. A wait that does not finish returns at once: nothing sleeps.
    ``waits`` keeps each timeout the loop waited with (None: as long as it takes)."""

    def __init__(self, *, finish_on_wait: bool = True) -> None:
        self.finish_on_wait = finish_on_wait
        self.waits: list[float | None] = []
        self._jobs: list[tuple[Callable[[], Any], Future[Any]]] = []

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.append((fn, future))
        return future

    def complete(self, index: int = 0) -> None:
        """Run the ``index``-th job still pending (0: the oldest)."""
        fn, future = self._jobs.pop(index)
        try:
            future.set_result(fn())
        except BaseException as exc:  # kept in the future, as a thread's executor does
            future.set_exception(exc)

    def complete_all(self) -> None:
        while self._jobs:
            self.complete()

    def wait(self, future: Future[Any], timeout_s: float | None) -> bool:
        self.waits.append(timeout_s)
        if timeout_s is None or (self.finish_on_wait and timeout_s > 0):
            while not future.done() and self._jobs:
                self.complete()
        return future.done()


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

    def send(  # type: ignore[override]  # its deliveries are the transactional sink's
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None,
    ) -> HeldDelivery:
        if not self.in_transaction:
            raise SinkUnavailable("kafka-python: Cannot call send in state READY (fake)")
        if self._error is not None:
            held = HeldDelivery(None, self._error)
        else:
            failure = self.fail_next.pop("send", None)
            self.auto_ack = failure is None
            delivery = super().send(topic, key, value, headers, partition)
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
