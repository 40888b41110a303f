"""confluent-kafka (librdkafka) adapters for the loop's :class:`Source` and :class:`Sink`.

The same client settings as :mod:`sentistream.worker.backends.kafka_python.io`, in
librdkafka's names:
auto-commit off, ``auto.offset.reset=earliest``, ``fetch.wait.max.ms=10``, no topic
auto-creation, ``read_committed`` under exactly-once; ``acks=all``, idempotence,
``linger.ms=2``, the murmur2 partitioner of the Java and kafka-python clients.

**Who serves librdkafka's callbacks.** librdkafka runs delivery reports and rebalance
callbacks only inside ``poll()``/``consume()``/``flush()`` on the calling thread. The
consumer's (rebalances) are served by :meth:`ConfluentSource.poll`, the loop's own call. The
producer's are served by the loop (every send and flush, and asking a pending delivery
whether it is done) and, so that they run when Kafka acknowledges rather than at the next
step, by a daemon thread: see :mod:`sentistream.worker.backends.confluent.delivery`.

librdkafka's log lines go to the ``confluent_kafka`` logger (served by the same polls), which
the worker keeps quiet as it keeps kafka-python's: it says what matters itself.

**Commits with a deadline.** ``Consumer.commit(asynchronous=False)`` has no timeout: with
the group coordinator away it waits as long as librdkafka retries. The commit runs on a
one-thread executor and the loop waits at most ``timeout_s`` for it
(:class:`CommitDeferred` past that); the next commit queues behind it, so offsets are
never committed out of order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, NamedTuple

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition

from sentistream.worker.app.connect import CannotConnect
from sentistream.worker.backends.confluent.config import librdkafka_config
from sentistream.worker.backends.confluent.delivery import ConfluentDelivery, DeliveryServer
from sentistream.worker.core.loop import DEFAULT_MAX_REQUEST_BYTES
from sentistream.worker.core.messages import HeldRecord, UnreadableRecord
from sentistream.worker.core.ports import (
    CommitDeferred,
    CommitRefused,
    Delivery,
    SinkUnavailable,
    SourceFailed,
    TopicPartition,
    TransactionFailed,
)
from sentistream.worker.settings import WorkerSettings

__all__ = [
    "ConfluentSink",
    "ConfluentSource",
    "KafkaUnreachable",
    "Membership",
    "commit_outcome",
    "fatal_error_of",
    "kafka_exception_of",
]

log = logging.getLogger(__name__)

#: librdkafka's own log lines (served by poll/consume), under the worker's logging; the
#: worker quiets it as it quiets kafka-python's (main.quiet_kafka_logs).
LIBRDKAFKA_LOG = logging.getLogger("confluent_kafka")
#: How long building a consumer waits for the cluster's metadata (kafka-python: bootstrap).
BOOTSTRAP_TIMEOUT_S = 8.0
#: How long a send waits for room in librdkafka's queue before the sink is unavailable.
MAX_BLOCK_S = 10.0

_REFUSED = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError._ASSIGNMENT_LOST,
    }
)
_DEFERRED = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._WAIT_COORD,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)
#: Errors of a connection attempt that retrying cannot cure (credentials, certificates).
_AUTH = KafkaError._AUTHENTICATION
_CANNOT_CONNECT = frozenset({_AUTH, KafkaError._SSL})
# Retried by librdkafka for ever; kafka-python raises them from poll(): the worker stops.
_NOT_AUTHORIZED = frozenset(
    {KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED}
)
#: A send refused because the producer, not the record, is unusable.
_UNAVAILABLE = frozenset(
    {KafkaError._UNKNOWN_TOPIC, KafkaError._FATAL, KafkaError._STATE, KafkaError._DESTROY}
)


class KafkaUnreachable(Exception):  # noqa: N818
    """No broker answered in time while building a client: retried by the worker. (A
    librdkafka :class:`KafkaException` from a constructor is a configuration error, not
    retried.)"""


def commit_outcome(error: KafkaError) -> Exception | None:
    """The port's outcome for a failed commit: :class:`CommitRefused` (the group moved on),
    :class:`CommitDeferred` (Kafka unreachable for now), or None (not an outcome: raise the
    client's error)."""
    if error.code() in _REFUSED:
        return CommitRefused(error.str())
    if error.code() in _DEFERRED or error.retriable():
        return CommitDeferred(error.str())
    return None


def _record(message: Message) -> HeldRecord | UnreadableRecord:
    kind, timestamp = message.timestamp()
    topic, partition, offset = (
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
    )
    try:
        headers = message.headers() or []
    except (SystemError, UnicodeDecodeError) as exc:
        # confluent-kafka decodes header keys as UTF-8 and fails with a SystemError (its
        # UnicodeDecodeError as the cause) for one that is not: that record is dead-lettered.
        cause = exc.__cause__ or exc
        problem = f"a header key is not UTF-8 ({type(cause).__name__}: {cause})"
        log.error(  # noqa: TRY400 - the problem is the whole story
            "consumer: the record at %s-%d offset %d cannot be read (%s): dead-lettering it",
            topic,
            partition,
            offset,
            problem,
        )
        return UnreadableRecord(topic, partition, offset, problem, timestamp=timestamp)
    return HeldRecord(
        topic,
        partition,
        offset,
        -1 if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
        message.key(),  # bytes: no deserializer configured
        message.value(),
        headers,  # type: ignore[arg-type]
    )


class Membership(NamedTuple):
    """What :meth:`ConfluentSource.batch_group` hands the transactional sink: the
    assignment's generation (ours: counted in the rebalance callbacks) and librdkafka's
    consumer group metadata for ``send_offsets_to_transaction``."""

    generation: int
    metadata: Any


_MIXED = Membership(-1, None)
"""Records of one batch were fetched under different assignments."""


def _tps(partitions: Collection[TopicPartition]) -> list[KafkaTopicPartition]:
    return [KafkaTopicPartition(tp.topic, tp.partition) for tp in partitions]


def _names(partitions: Sequence[KafkaTopicPartition]) -> str:
    return ", ".join(sorted(f"{tp.topic}-{tp.partition}" for tp in partitions)) or "none"


class ConfluentSource:
    def __init__(self, settings: WorkerSettings) -> None:
        self._topic = settings.input_topic
        self._group = settings.group_id
        exactly_once = settings.processing_guarantee == "exactly-once"
        self._connect_errors: list[KafkaError] = []
        self._consumer = Consumer(
            {
                **librdkafka_config(settings.client_config()),
                "group.id": settings.group_id,
                "client.id": f"sentistream-worker-{settings.group_id}",
                "isolation.level": "read_committed" if exactly_once else "read_uncommitted",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "allow.auto.create.topics": False,
                "fetch.wait.max.ms": 10,
                "max.poll.interval.ms": 300_000,
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 3_000,
                # A group formed before the topic's partitions were in the metadata rebalances
                # when a refresh shows them (see kafka_io).
                "topic.metadata.refresh.interval.ms": 5_000,
                "error_cb": self._on_client_error,
                "logger": LIBRDKAFKA_LOG,
            }
        )
        self._checking = True
        self._fatal: KafkaError | None = None
        self._generation = 0
        self._assignments = 0
        self._batch_group: Membership | None = None
        self._outage_since: float | None = None
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="sentistream-commit")
        self._commit_in_flight: Future[list[KafkaTopicPartition] | None] | None = None
        self._check_reachable()

    def _check_reachable(self) -> None:
        """Fetch the metadata once, as kafka-python's constructor bootstraps: a broker that
        refuses the login or the TLS handshake is :class:`CannotConnect`, one that does not
        answer :class:`KafkaUnreachable` (the worker retries)."""
        try:
            self._consumer.list_topics(timeout=BOOTSTRAP_TIMEOUT_S)
        except KafkaException as exc:
            self._consumer.poll(0)  # serves error_cb: why the connections failed
            refused = [e for e in self._connect_errors if e.code() in _CANNOT_CONNECT]
            self._consumer.close()
            if refused:
                error = refused[0]
                kind = "authentication failed" if error.code() == _AUTH else "TLS handshake failed"
                raise CannotConnect(f"{kind}: {error.str()}") from None
            raise KafkaUnreachable(str(exc.args[0] if exc.args else exc)) from exc
        finally:
            self._connect_errors.clear()
            self._checking = False

    def _on_client_error(self, error: KafkaError) -> None:
        """librdkafka's ``error_cb`` (run inside our polls): while connecting, collected to say
        why; afterwards, a fatal error stops the worker at the next poll, the others (all
        brokers down) an outage librdkafka recovers from, said once; the rest (each failed
        reconnection attempt, a broker closing an idle connection) only at DEBUG: during an
        outage librdkafka reports one every reconnect backoff."""
        if self._checking:
            self._connect_errors.append(error)
        elif error.fatal() or error.code() in _NOT_AUTHORIZED:
            self._fatal = error
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._on_error(error)
        else:
            log.debug("consumer: %s", error.str())

    def topics(self) -> set[str]:
        """Every topic the cluster lists (one metadata round trip)."""
        return set(self._consumer.list_topics(timeout=BOOTSTRAP_TIMEOUT_S).topics)

    def subscribe(self) -> None:
        self._consumer.subscribe(
            [self._topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    # Rebalance callbacks: run inside consume() on the loop's thread. They only log and count
    # the generation; librdkafka assigns and unassigns itself after they return.
    def _assigned(self, _consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._generation += 1
        self._assignments += 1
        log.info("partitions assigned: %s", _names(partitions))

    def _revoked(self, _consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._generation += 1
        log.info("partitions revoked: %s", _names(partitions))

    def _lost(self, _consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._generation += 1
        log.warning("partitions lost (the group moved on without us): %s", _names(partitions))

    def poll(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[HeldRecord | UnreadableRecord]]:
        generation = self._generation
        messages = self._take(timeout_ms, max_records)
        if self._fatal is not None:
            raise self._failed(self._fatal)
        polled: dict[TopicPartition, list[HeldRecord | UnreadableRecord]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                self._on_error(error)
                continue
            record = _record(message)
            tp = TopicPartition(record.topic, record.partition)
            batch = polled.get(tp)
            if batch is None:
                polled[tp] = [record]
            else:
                batch.append(record)
        if polled:
            if self._outage_since is not None:
                log.info(
                    "consumer: Kafka reachable again after %.0f s",
                    time.monotonic() - self._outage_since,
                )
                self._outage_since = None
            group = self._batch_group
            if self._generation != generation:  # a rebalance inside this poll
                self._batch_group = _MIXED
            elif group is None:
                self._batch_group = Membership(generation, self._consumer.consumer_group_metadata())
            elif group.generation != generation:
                self._batch_group = _MIXED
        return polled

    def _take(self, timeout_ms: int, max_records: int) -> list[Message]:
        """Up to ``max_records`` messages, returning as soon as there is one, as kafka-python's
        ``poll`` does. (``consume(n, timeout)`` alone waits until it has ``n`` or the timeout
        passes: measured in the bench, that held paced tweets for the whole idle poll and
        made the adaptive batcher's "drained" signal come only at the timeout.)"""
        messages = self._consumer.consume(num_messages=max_records, timeout=0)
        if messages:
            return messages
        first = self._consumer.poll(timeout_ms / 1000)
        if first is None:
            return []
        if max_records == 1:
            return [first]
        return [first, *self._consumer.consume(num_messages=max_records - 1, timeout=0)]

    def _failed(self, error: KafkaError) -> SourceFailed:
        """What kafka-python's adapter says for the same refusal (librdkafka would retry an
        authorization failure for ever, the worker looking healthy and reading nothing)."""
        if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
            return SourceFailed.not_authorized_for_group(self._group, error.str())
        if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            return SourceFailed.not_authorized_for_topic(self._topic, error.str())
        return SourceFailed(f"consumer: Kafka refused the consumer (a fatal error): {error.str()}")

    def _on_error(self, error: KafkaError) -> None:
        """A consumer event that is not a record: the end of a partition is nothing, a fatal
        error stops the worker, anything else is an outage librdkafka recovers from."""
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal() or error.code() in _NOT_AUTHORIZED:
            raise self._failed(error)
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("consumer: %s; librdkafka retries by itself", error.str())

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_s: float
    ) -> set[TopicPartition]:
        """Commit the offsets of partitions still assigned; the others are returned unsent."""
        owned = self.assignment()
        dropped = {tp for tp in offsets if tp not in owned}
        to_commit = [
            KafkaTopicPartition(tp.topic, tp.partition, offset)
            for tp, offset in offsets.items()
            if tp in owned
        ]
        if not to_commit:
            return dropped
        if self._commit_in_flight is not None and not self._commit_in_flight.done():
            raise CommitDeferred("the previous commit has not finished yet")
        future = self._committer.submit(self._commit_sync, to_commit)
        self._commit_in_flight = future
        try:
            results = future.result(timeout=max(0.001, timeout_s))
        except FutureTimeout:
            raise CommitDeferred(f"the commit did not finish within {timeout_s:.1f} s") from None
        except KafkaException as exc:
            raise _commit_error(exc) from exc
        for result in results or ():
            if result.error is not None:
                outcome = commit_outcome(result.error)
                raise outcome if outcome is not None else KafkaException(result.error)
        return dropped

    def _commit_sync(self, offsets: list[KafkaTopicPartition]) -> list[KafkaTopicPartition] | None:
        return self._consumer.commit(offsets=offsets, asynchronous=False)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def rebalances(self) -> int:
        return self._assignments

    def input_partitions(self) -> int | None:
        """One metadata request (the loop asks after each rebalance only)."""
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=1.0)
        except KafkaException:
            return None
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            return None
        return len(topic.partitions)

    # -- exactly-once (TransactionalSource) ----------------------------------------------------

    def batch_group(self) -> object | None:
        group, self._batch_group = self._batch_group, None
        if group is _MIXED:
            return None
        if group is not None:
            return group
        return Membership(self._generation, self._consumer.consumer_group_metadata())

    def still_current(self, group: object) -> bool:
        return isinstance(group, Membership) and group.generation == self._generation

    def rewind(self, timeout_s: float) -> None:
        """Seek each assigned partition to its committed offset (the start when none)."""
        self._batch_group = None
        assigned = self._consumer.assignment()
        if not assigned:
            return
        try:
            committed = self._consumer.committed(assigned, timeout=timeout_s)
            for tp in committed:
                offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                self._consumer.seek(KafkaTopicPartition(tp.topic, tp.partition, offset))
        except KafkaException as exc:
            raise TransactionFailed(
                f"cannot rewind to the committed offsets of {_names(assigned)}: {exc}"
            ) from exc

    def lag(self) -> Mapping[TopicPartition, int]:
        """Per assigned partition: the high watermark of the last fetch minus the position
        (both known locally; nothing is asked of the broker)."""
        lag: dict[TopicPartition, int] = {}
        assigned = self._consumer.assignment()
        if not assigned:
            return lag
        for tp in self._consumer.position(assigned):
            if tp.offset < 0:
                continue
            try:
                watermarks = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:  # revoked between the two calls
                continue
            if watermarks is None or watermarks[1] < 0:
                continue
            lag[TopicPartition(tp.topic, tp.partition)] = max(0, watermarks[1] - tp.offset)
        return lag

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        if partitions:
            self._consumer.pause(_tps(partitions))

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        if partitions:
            self._consumer.resume(_tps(partitions))

    def close(self, timeout_s: float = 5.0) -> None:
        """Leave the group (no commit: the loop has committed what was delivered)."""
        self._committer.shutdown(wait=False, cancel_futures=True)
        self._consumer.close()


def _commit_error(exc: KafkaException) -> Exception:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        outcome = commit_outcome(error)
        if outcome is not None:
            return outcome
    return exc


class ConfluentSink:
    def __init__(
        self,
        settings: WorkerSettings,
        overrides: Mapping[str, Any] | None = None,
        *,
        max_block_s: float = MAX_BLOCK_S,
    ) -> None:
        """``overrides``: more producer properties (the transactional sink's);
        ``max_block_s``: how long a send waits for room in librdkafka's queue."""
        self._max_block_s = max_block_s
        self._producer = Producer(
            {
                **librdkafka_config(settings.client_config()),
                "client.id": f"sentistream-worker-{settings.group_id}",
                "acks": "all",
                "enable.idempotence": True,
                "allow.auto.create.topics": False,
                "linger.ms": 2,
                "batch.size": 256 * 1024,
                "message.max.bytes": DEFAULT_MAX_REQUEST_BYTES,
                "max.in.flight.requests.per.connection": 5,
                "delivery.timeout.ms": 120_000,
                # Keys land where the Java and kafka-python clients put them.
                "partitioner": "murmur2_random",
                "logger": LIBRDKAFKA_LOG,
                **(overrides or {}),
            }
        )
        self._serve = lambda: self.serve(0)
        self._lock = threading.Lock()
        self._server = DeliveryServer(self.serve)
        self._server.start()
        self._partition_counts: dict[str, int] = {}
        self._closed = False

    def serve(self, timeout_s: float) -> None:
        """Run the delivery reports that have arrived (waiting up to ``timeout_s`` for one).

        confluent-kafka raises a producer's fatal error (a fenced transactional producer, a
        broken idempotent sequence) once, from whichever poll or flush comes first, before
        that poll runs any report. The error is not lost by catching it here: the records it
        failed complete with their own errors, so the loop aborts the batch (and the abort
        says fenced), and every later send is refused as :class:`SinkUnavailable`."""
        try:
            self._producer.poll(timeout_s)
        except (KafkaException, SystemError) as exc:
            _log_fatal_or_raise(exc)

    def _partition_for(self, topic: str, hint: int | None) -> int:
        if hint is None:
            return -1  # librdkafka's partitioner chooses
        count = self._partition_counts.get(topic)
        if count is None:
            try:
                metadata = self._producer.list_topics(topic, timeout=MAX_BLOCK_S)
            except KafkaException as exc:
                raise SinkUnavailable(f"no metadata for {topic}: {exc}") from exc
            found = metadata.topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                why = found.error if found is not None else "not listed"
                raise SinkUnavailable(f"no partitions known for {topic}: {why}")
            count = len(found.partitions)
            self._partition_counts[topic] = count
        return hint % count

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition_hint: int | None,
    ) -> Delivery:
        """Raises librdkafka's :class:`KafkaException` for a record it refuses (too large,
        ...); :class:`SinkUnavailable` when it cannot take any record (its queue still full
        for ``max_block_s``, the topic unknown, the producer closed or failed)."""
        if self._closed:
            raise SinkUnavailable("the producer is closed")
        delivery = ConfluentDelivery(self._serve, self._lock)
        partition = self._partition_for(topic, partition_hint)
        deadline = time.monotonic() + self._max_block_s
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=partition,
                    headers=list(headers),
                    on_delivery=delivery.complete,
                )
                break
            except BufferError:  # librdkafka's queue is full: wait for acknowledgements
                if time.monotonic() >= deadline:
                    raise SinkUnavailable(
                        f"the producer's queue stayed full for {self._max_block_s:g} s"
                    ) from None
                self.serve(0.05)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError) and (
                    error.code() in _UNAVAILABLE or error.fatal()
                ):
                    raise SinkUnavailable(
                        f"the producer cannot take records for {topic}: {error.str()}"
                    ) from exc
                raise
        self.serve(0)
        return delivery

    def flush(self, timeout_s: float) -> bool:
        """Whether every record sent was acknowledged (or failed) within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        try:
            return self._producer.flush(max(0.0, timeout_s)) == 0
        except (KafkaException, SystemError) as exc:  # a fatal error, raised once: see serve()
            _log_fatal_or_raise(exc)
            return self._producer.flush(max(0.0, deadline - time.monotonic())) == 0

    def close(self, timeout_s: float) -> None:
        """Flush for up to ``timeout_s``, then close, abandoning what is still
        unacknowledged (it was not committed, so a restart redoes it)."""
        if self._closed:
            return
        self._closed = True
        self._server.stop()
        if not self.flush(timeout_s):
            log.warning("producer closed with deliveries still pending (not committed)")
            self._producer.purge()
            self.serve(0)
        self._producer.close()


def kafka_exception_of(exc: BaseException) -> KafkaException | None:
    """``exc`` if it is confluent-kafka's :class:`KafkaException`, or the one behind it.

    confluent-kafka sets the error as the pending exception and may then run a Python callback
    (our ``logger`` receiving librdkafka's FATAL line) before returning; that callback fails
    with it, and Python reports a :class:`SystemError` ("returned a result with an exception
    set") whose cause is the :class:`KafkaException` (seen once in CI, in ``flush``)."""
    if isinstance(exc, SystemError):
        exc = exc.__cause__  # type: ignore[assignment]  # None or the pending exception
    return exc if isinstance(exc, KafkaException) else None


def fatal_error_of(exc: BaseException) -> KafkaError | None:
    """The producer's fatal error that ``exc`` carries (see :func:`kafka_exception_of`)."""
    raised = kafka_exception_of(exc)
    error = raised.args[0] if raised is not None and raised.args else None
    return error if isinstance(error, KafkaError) and error.fatal() else None


def _log_fatal_or_raise(exc: KafkaException | SystemError) -> None:
    error = fatal_error_of(exc)
    if error is None:
        raise exc
    log.error("producer: fatal error: %s", error.str())
