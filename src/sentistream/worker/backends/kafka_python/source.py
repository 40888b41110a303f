"""kafka-python's consumer as the loop's :class:`Source` (and exactly-once's
:class:`TransactionalSource`).

Settings chosen here (the shared values and why: :mod:`sentistream.worker.backends.tuning`):
auto-commit off (the loop commits after delivery), no topic auto-creation (the worker checks
its topics at start, :mod:`sentistream.worker.core.topics`). Rebalance listeners run inside
``poll`` on the loop's thread: ours only log and count, never commit or block.

What this adapter reads of kafka-python's private state is in
:mod:`sentistream.worker.backends.kafka_python.internals`, each access tested.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import (
    CommitFailedError,
    CorruptRecordError,
    GroupAuthorizationFailedError,
    IllegalGenerationError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    RebalanceInProgressError,
    RetriableError,
    TopicAuthorizationFailedError,
    UnknownMemberIdError,
    UnsupportedCodecError,
)
from kafka.structs import OffsetAndMetadata

from sentistream.connection import FailureWatch
from sentistream.worker.backends.kafka_python import internals
from sentistream.worker.backends.kafka_python.config import consumer_config
from sentistream.worker.backends.shared import BatchGeneration, OutageLog, names, split_owned
from sentistream.worker.core.messages import InputRecord, UnreadableRecord
from sentistream.worker.core.ports import (
    CannotConnect,
    CommitDeferred,
    CommitRefused,
    SourceFailed,
    TopicPartition,
    TransactionFailed,
)
from sentistream.worker.settings import WorkerSettings

__all__ = ["KafkaSource", "connect_source"]

log = logging.getLogger(__name__)

_REFUSED = (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


class _LoggingListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs each rebalance and counts the assignments (kafka-python calls it on the loop's
    thread, inside ``poll``); nothing else: the loop reads the assignment itself."""

    def __init__(self) -> None:
        self.assignments = 0

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked: %s", names(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.assignments += 1
        log.info("partitions assigned: %s", names(assigned))


def _same_generation(a: Any, b: Any) -> bool:
    return bool(a.generation_id == b.generation_id and a.member_id == b.member_id)


def _kafka_tps(partitions: Collection[TopicPartition]) -> list[KafkaTopicPartition]:
    return [KafkaTopicPartition(tp.topic, tp.partition) for tp in partitions]


class KafkaSource:
    def __init__(self, settings: WorkerSettings) -> None:
        self._topic = settings.input_topic
        self._group = settings.group_id
        self._listener = _LoggingListener()
        self._consumer = KafkaConsumer(**consumer_config(settings))
        self._batch = BatchGeneration[Any](_same_generation)
        self._outage = OutageLog("consumer", log)

    def topics(self) -> set[str]:
        """Every topic the cluster lists (one metadata round trip)."""
        return set(self._consumer.topics())

    def subscribe(self) -> None:
        self._consumer.subscribe([self._topic], listener=self._listener)
        # One metadata round trip now, so the group leader's first assignment is made from
        # metadata that already shows the subscribed topic. Without it kafka-python assigns
        # from a snapshot taken before the topic's metadata arrived, sees the snapshot change
        # a moment later and rebalances the whole group again: two rebalances for every
        # worker that starts (and that second one is the join kafka-python can lose, see
        # _finish_lost_join).
        try:
            self._consumer.topics()
        except KafkaError as exc:  # the cost is only the extra rebalance
            log.debug("consumer: no metadata before the first poll (%s)", exc)

    def poll(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        try:
            polled = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except RetriableError as exc:
            # kafka-python 3.0 raises out of poll() when it cannot reach the group coordinator
            # (a broker restarting); it reconnects by itself, so this is a poll with nothing.
            self._unreachable(exc, timeout_s)
            return {}
        except CorruptRecordError as exc:
            return self._skip_unreadable(exc)
        except KafkaError as exc:  # not retriable: kafka-python would raise it at every poll
            raise self._failed(exc) from exc
        internals.finish_lost_join(self._consumer)
        self._outage.up()
        if polled:
            self._batch.saw(self._consumer.group_metadata())
        return {TopicPartition(tp.topic, tp.partition): records for tp, records in polled.items()}

    def _skip_unreadable(
        self, exc: CorruptRecordError
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        """kafka-python could not parse the record at a partition's position (a header key
        that is not UTF-8, a failed CRC) and raises at every poll from there: seek past it and
        hand the loop an :class:`UnreadableRecord` to dead-letter in its place.

        Which partition and offset: :func:`internals.unreadable_position`. Without them the
        error propagates.
        """
        found = internals.unreadable_position(self._consumer)
        if found is None or found[0] not in self._consumer.assignment():
            raise exc
        tp, offset = found
        log.error(
            "consumer: the record at %s-%d offset %d cannot be read (%s): dead-lettering it "
            "in its place and reading on",
            tp.topic,
            tp.partition,
            offset,
            exc,
        )
        self._consumer.seek(tp, offset + 1)
        record = UnreadableRecord(tp.topic, tp.partition, offset, str(exc))
        return {TopicPartition(tp.topic, tp.partition): [record]}

    def _unreachable(self, exc: Exception, timeout_s: float) -> None:
        self._outage.down(f"Kafka unreachable ({exc}); it reconnects by itself")
        # The error came at once: wait as the poll would have, rather than spin.
        time.sleep(max(0.05, timeout_s))

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_s: float
    ) -> set[TopicPartition]:
        """Commit the offsets of partitions still assigned; the others are returned unsent
        (a revoked partition's new owner starts from its last commit and redoes the rest)."""
        owned, dropped = split_owned(offsets, self.assignment())
        to_commit = {
            KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "", -1)
            for tp, offset in owned.items()
        }
        if not to_commit:
            return dropped
        try:
            self._consumer.commit(offsets=to_commit, timeout_ms=max(1, int(timeout_s * 1000)))
        except _REFUSED as exc:
            raise CommitRefused(str(exc)) from exc
        except (RetriableError, KafkaTimeoutError) as exc:
            raise CommitDeferred(str(exc)) from exc
        return dropped

    def _failed(self, exc: KafkaError) -> SourceFailed:
        """What a non-retriable error out of ``poll`` means, with what the operator can do."""
        if isinstance(exc, UnsupportedCodecError):
            return SourceFailed(f"consumer: {codec_hint(exc)}")
        if isinstance(exc, GroupAuthorizationFailedError):
            return SourceFailed.not_authorized_for_group(self._group, str(exc))
        if isinstance(exc, TopicAuthorizationFailedError):
            return SourceFailed.not_authorized_for_topic(self._topic, str(exc))
        return SourceFailed(f"consumer: Kafka refused the consumer ({type(exc).__name__}): {exc}")

    def rebalances(self) -> int:
        return self._listener.assignments

    def input_partitions(self) -> int | None:
        """From the metadata kafka-python keeps for the subscription (no request)."""
        partitions = self._consumer.partitions_for_topic(self._topic)
        return len(partitions) if partitions else None

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    # -- exactly-once (TransactionalSource) ----------------------------------------------------

    def batch_group(self) -> object | None:
        group: object | None = self._batch.take(self._consumer.group_metadata)
        return group

    def still_current(self, group: object) -> bool:
        return _same_generation(group, self._consumer.group_metadata())

    def rewind(self, timeout_s: float) -> None:
        """Seek each assigned partition to its committed offset (the start when none), so
        the records of an aborted transaction are read again."""
        self._batch.reset()
        deadline = time.monotonic() + timeout_s
        for tp in self._consumer.assignment():
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            try:
                committed = self._consumer.committed(tp, timeout_ms=left_ms)
            except KafkaError as exc:
                raise TransactionFailed(
                    f"cannot read the committed offset of {tp.topic}-{tp.partition} to rewind "
                    f"to: {exc}"
                ) from exc
            if committed is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

    def lag(self) -> Mapping[TopicPartition, int]:
        """Per assigned partition: high watermark minus the consumer's position.

        The position is the subscription state's (:func:`internals.position`).
        """
        lag: dict[TopicPartition, int] = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            position = internals.position(self._consumer, tp)
            if highwater is not None and position is not None:
                lag[TopicPartition(tp.topic, tp.partition)] = max(0, highwater - position)
        return lag

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        if partitions:
            self._consumer.pause(*_kafka_tps(partitions))

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        if partitions:
            self._consumer.resume(*_kafka_tps(partitions))

    def close(self, timeout_s: float = 5.0) -> None:
        """Leave the group (no commit: the loop has committed what was delivered)."""
        self._consumer.close(autocommit=False, timeout_ms=max(1, int(timeout_s * 1000)))


def connect_source(settings: WorkerSettings, kind: type[KafkaSource] = KafkaSource) -> KafkaSource:
    """A :class:`KafkaSource` (or the subclass ``kind``); :class:`CannotConnect` when
    kafka-python's log says the broker refused the login or the TLS handshake (kafka-python
    itself raises only a bootstrap timeout), a retriable ``KafkaConnectionError`` saying why
    when the broker did not answer."""
    with FailureWatch() as watch:
        try:
            return kind(settings)
        except KafkaError:
            why = watch.explain(settings)
            if why is None:
                raise
            if watch.fatal:
                raise CannotConnect(why) from None
            raise KafkaConnectionError(why) from None  # logged, then retried


#: The package that lets kafka-python read each codec (all are worker dependencies).
CODEC_PACKAGES = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}


def codec_hint(exc: UnsupportedCodecError) -> str:
    """One line naming the codec a fetched batch uses and the package that reads it."""
    message = str(exc)
    codec = next((name for name in CODEC_PACKAGES if name in message.lower()), None)
    if codec is None:
        return f"a fetched record batch uses a compression codec this install cannot read: {exc}"
    return (
        f"a fetched record batch is compressed with {codec}, which this install cannot read: "
        f"pip install {CODEC_PACKAGES[codec]} (a restart reads the same batch again)"
    )
