"""confluent-kafka's (librdkafka's) consumer as the loop's :class:`Source` (and
exactly-once's :class:`TransactionalSource`). The shared tuning is rendered in
:mod:`sentistream.worker.backends.confluent.config`.

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
)
from confluent_kafka import TopicPartition as KafkaTopicPartition

from sentistream.worker.backends.confluent.config import consumer_properties
from sentistream.worker.backends.confluent.errors import (
    KafkaUnreachable,
    commit_error,
    commit_outcome,
)
from sentistream.worker.backends.shared import BatchGeneration, OutageLog, names, split_owned
from sentistream.worker.backends.tuning import consumer_tuning
from sentistream.worker.core.messages import HeldRecord, UnreadableRecord
from sentistream.worker.core.ports import (
    CannotConnect,
    CommitDeferred,
    SourceFailed,
    TopicPartition,
    TransactionFailed,
)
from sentistream.worker.settings import WorkerSettings

__all__ = ["ConfluentSource", "Membership"]

log = logging.getLogger(__name__)

#: Errors of a connection attempt that retrying cannot cure (credentials, certificates).
_AUTH = KafkaError._AUTHENTICATION
_CANNOT_CONNECT = frozenset({_AUTH, KafkaError._SSL})
# Retried by librdkafka for ever; kafka-python raises them from poll(): the worker stops.
_NOT_AUTHORIZED = frozenset(
    {KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED}
)


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


def _tps(partitions: Collection[TopicPartition]) -> list[KafkaTopicPartition]:
    return [KafkaTopicPartition(tp.topic, tp.partition) for tp in partitions]


class ConfluentSource:
    def __init__(self, settings: WorkerSettings) -> None:
        self._topic = settings.input_topic
        self._group = settings.group_id
        self._bootstrap_timeout_s = consumer_tuning(settings).bootstrap_timeout_s
        self._connect_errors: list[KafkaError] = []
        self._consumer = Consumer(
            {
                **consumer_properties(settings),
                "error_cb": self._on_client_error,
            }
        )
        self._checking = True
        self._fatal: KafkaError | None = None
        self._generation = 0
        self._assignments = 0
        self._batch = BatchGeneration[Membership](lambda a, b: a.generation == b.generation)
        self._outage = OutageLog("consumer", log)
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="sentistream-commit")
        self._commit_in_flight: Future[list[KafkaTopicPartition] | None] | None = None
        self._check_reachable()

    def _check_reachable(self) -> None:
        """Fetch the metadata once, as kafka-python's constructor bootstraps: a broker that
        refuses the login or the TLS handshake is :class:`CannotConnect`, one that does not
        answer :class:`KafkaUnreachable` (the worker retries)."""
        try:
            self._consumer.list_topics(timeout=self._bootstrap_timeout_s)
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
        return set(self._consumer.list_topics(timeout=self._bootstrap_timeout_s).topics)

    def subscribe(self) -> None:
        self._consumer.subscribe(
            [self._topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    # Rebalance callbacks: run inside consume() on the loop's thread. They only log and count
    # the generation; librdkafka assigns and unassigns itself after they return.
    def _assigned(self, _consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._generation += 1
        self._assignments += 1
        log.info("partitions assigned: %s", names(partitions))

    def _revoked(self, _consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._generation += 1
        log.info("partitions revoked: %s", names(partitions))

    def _lost(self, _consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._generation += 1
        log.warning("partitions lost (the group moved on without us): %s", names(partitions))

    def poll(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[HeldRecord | UnreadableRecord]]:
        generation = self._generation
        messages = self._take(timeout_s, max_records)
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
            self._outage.up()
            if self._generation != generation:  # a rebalance inside this poll
                self._batch.mix()
            else:
                self._batch.saw(Membership(generation, self._consumer.consumer_group_metadata()))
        return polled

    def _take(self, timeout_s: float, max_records: int) -> list[Message]:
        """Up to ``max_records`` messages, returning as soon as there is one, as kafka-python's
        ``poll`` does. (``consume(n, timeout)`` alone waits until it has ``n`` or the timeout
        passes, which holds paced tweets for the whole idle poll and makes the adaptive
        batcher's "drained" signal come only at the timeout.)"""
        messages = self._consumer.consume(num_messages=max_records, timeout=0)
        if messages:
            return messages
        first = self._consumer.poll(max(0.0, timeout_s))
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
        self._outage.down(f"{error.str()}; librdkafka retries by itself")

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_s: float
    ) -> set[TopicPartition]:
        """Commit the offsets of partitions still assigned; the others are returned unsent."""
        owned, dropped = split_owned(offsets, self.assignment())
        to_commit = [
            KafkaTopicPartition(tp.topic, tp.partition, offset) for tp, offset in owned.items()
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
            raise commit_error(exc) from exc
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
        return self._batch.take(
            lambda: Membership(self._generation, self._consumer.consumer_group_metadata())
        )

    def still_current(self, group: object) -> bool:
        return isinstance(group, Membership) and group.generation == self._generation

    def rewind(self, timeout_s: float) -> None:
        """Seek each assigned partition to its committed offset (the start when none)."""
        self._batch.reset()
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
                f"cannot rewind to the committed offsets of {names(assigned)}: {exc}"
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
        """Leave the group (no commit: the loop has committed what was delivered), waiting at
        most ``timeout_s``. librdkafka's ``close()`` has no timeout (with the coordinator away
        it waits as long as librdkafka retries the LeaveGroup), so it runs on a daemon thread
        and is abandoned past the deadline: the group then drops the member when its session
        times out."""
        self._committer.shutdown(wait=False, cancel_futures=True)
        closer = threading.Thread(
            target=self._consumer.close, name="sentistream-consumer-close", daemon=True
        )
        closer.start()
        closer.join(max(0.0, timeout_s))
        if closer.is_alive():
            log.warning(
                "consumer: leaving the group did not finish within %.1f s; the group drops "
                "this member when its session times out",
                timeout_s,
            )
