"""kafka-python adapters for the loop's :class:`Source` and :class:`Sink`.

Client settings chosen here (and why):

* consumer: auto-commit off (the loop commits after delivery), ``auto_offset_reset=earliest``
  (a new group starts at the beginning rather than skipping what is already there),
  ``fetch_max_wait_ms=10`` so a lone tweet is not held back for the broker's 500 ms default,
  ``max_poll_interval_ms`` well above any batch's time.
* producer: ``acks=all`` and idempotence, so retries neither lose nor duplicate a label,
  ``linger_ms=2`` to let a micro-batch's labels share a request without adding visible latency,
  ``lz4``-free (no compression) since labels are small and CPU is the bottleneck.
* neither client auto-creates topics: the worker checks at start that its topics exist (see
  :mod:`sentistream.worker.core.topics`) rather than labelling into a one-partition accident.
* Rebalance listeners run on kafka-python's IO thread: ours only log, never commit or block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import (
    CommitFailedError,
    CorruptRecordError,
    GroupAuthorizationFailedError,
    IllegalGenerationError,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    RebalanceInProgressError,
    RetriableError,
    TopicAuthorizationFailedError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata

from sentistream.worker.core.loop import DEFAULT_MAX_REQUEST_BYTES
from sentistream.worker.core.messages import InputRecord, UnreadableRecord
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

__all__ = ["KafkaSink", "KafkaSource", "connect_with_retry"]

T = TypeVar("T")

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
        log.info("partitions revoked: %s", _names(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.assignments += 1
        log.info("partitions assigned: %s", _names(assigned))


_MIXED = object()
"""Records of one batch were fetched under different group generations."""


def _same_generation(a: Any, b: Any) -> bool:
    return bool(a.generation_id == b.generation_id and a.member_id == b.member_id)


def _finish_lost_join(consumer: KafkaConsumer) -> bool:
    """Rejoin when kafka-python (3.0.12 and earlier 3.0 releases) lost a finished group join.

    A rebalance the group leader starts because the subscribed topics' metadata changed (a
    partition added, or the snapshot taken at start) is "needed" only until the leader has
    computed the assignment. If the poll's timeout runs out while the SyncGroup request is
    in flight (a poll with ``timeout_ms=0``, which the loop makes whenever a micro-batch is
    due, hits that every time), the next poll sees no rejoin needed and never applies the
    finished join: the member holds no partitions (or its old ones), sends no heartbeats and
    labels nothing, while the loop runs on. Seen in the integration tests as a worker ready
    for a moment and then idle for good; reproduced by growing the input topic while a
    consumer polls with ``timeout_ms=0``.

    The state is read from kafka-python's coordinator (private: each attribute is looked up
    defensively, so a release without them makes this a no-op). Asking for a rejoin makes the
    next poll send a fresh JoinGroup, which completes normally because a requested rejoin
    stays needed until it is applied. Returns True when it asked.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    join = getattr(coordinator, "_join_task", None)
    if coordinator is None or join is None or not getattr(join, "is_done", False):
        return False
    if not getattr(coordinator, "rejoining", False) or coordinator.need_rejoin():
        return False
    log.warning("consumer: kafka-python finished a group join without applying it; rejoining")
    coordinator.request_rejoin()
    return True


def _names(partitions: Any) -> str:
    return ", ".join(sorted(f"{tp.topic}-{tp.partition}" for tp in partitions)) or "none"


def _kafka_tps(partitions: Collection[TopicPartition]) -> list[KafkaTopicPartition]:
    return [KafkaTopicPartition(tp.topic, tp.partition) for tp in partitions]


class KafkaSource:
    def __init__(self, settings: WorkerSettings) -> None:
        self._topic = settings.input_topic
        self._group = settings.group_id
        self._listener = _LoggingListener()
        exactly_once = settings.processing_guarantee == "exactly-once"
        self._consumer = KafkaConsumer(
            **settings.client_config(),
            # Exactly-once reads only committed input too (an upstream transactional writer).
            isolation_level="read_committed" if exactly_once else "read_uncommitted",
            group_id=settings.group_id,
            client_id=f"sentistream-worker-{settings.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            max_poll_records=settings.max_batch_size,
            fetch_max_wait_ms=10,
            max_poll_interval_ms=300_000,
            # A refused login or TLS handshake is retried until this; then the worker says why.
            bootstrap_timeout_ms=8_000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            # A group that formed before the input topic's partitions were in the metadata
            # (a topic created moments before, leaders not yet elected) gets an empty
            # assignment; it rebalances only when a metadata refresh shows the partitions.
            # kafka-python refreshes every 5 minutes by default; seen in the tests as a worker
            # ready with no partitions for a minute. 5 s bounds that.
            metadata_max_age_ms=5_000,
        )
        # The membership the records polled since the last batch_group() were fetched under;
        # _MIXED once two polls disagree.
        self._batch_group: Any = None
        self._outage_since: float | None = None

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
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        try:
            polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except RetriableError as exc:
            # kafka-python 3.0 raises out of poll() when it cannot reach the group coordinator
            # (a broker restarting); it reconnects by itself, so this is a poll with nothing.
            self._unreachable(exc, timeout_ms)
            return {}
        except CorruptRecordError as exc:
            return self._skip_unreadable(exc)
        except KafkaError as exc:  # not retriable: kafka-python would raise it at every poll
            raise self._failed(exc) from exc
        _finish_lost_join(self._consumer)
        if self._outage_since is not None:
            log.info(
                "consumer: Kafka reachable again after %.0f s",
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None
        if polled:
            group = self._consumer.group_metadata()
            if self._batch_group is None:
                self._batch_group = group
            elif self._batch_group is not _MIXED and not _same_generation(self._batch_group, group):
                self._batch_group = _MIXED
        return {TopicPartition(tp.topic, tp.partition): records for tp, records in polled.items()}

    def _skip_unreadable(
        self, exc: CorruptRecordError
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        """kafka-python could not parse the record at a partition's position (a header key
        that is not UTF-8, a failed CRC) and raises at every poll from there: seek past it and
        hand the loop an :class:`UnreadableRecord` to dead-letter in its place.

        Which partition and offset: the fetcher's in-line records (private, read-only; it
        raises from there when no record came before the bad one, and next time otherwise),
        whose next offset is the bad record's. Without them the error propagates as before.
        """
        fetcher = getattr(self._consumer, "_fetcher", None)
        pending = getattr(fetcher, "_next_partition_records", None)
        tp = getattr(pending, "topic_partition", None)
        offset = getattr(pending, "next_fetch_offset", None)
        if tp is None or not isinstance(offset, int) or tp not in self._consumer.assignment():
            raise exc
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

    def _unreachable(self, exc: Exception, timeout_ms: int) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            log.warning("consumer: Kafka unreachable (%s); it reconnects by itself", exc)
        # The error came at once: wait as the poll would have, rather than spin.
        time.sleep(max(0.05, timeout_ms / 1000))

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_s: float
    ) -> set[TopicPartition]:
        """Commit the offsets of partitions still assigned; the others are returned unsent
        (a revoked partition's new owner starts from its last commit and redoes the rest)."""
        owned = self.assignment()
        dropped = {tp for tp in offsets if tp not in owned}
        to_commit = {
            KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "", -1)
            for tp, offset in offsets.items()
            if tp in owned
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
        group, self._batch_group = self._batch_group, None
        if group is _MIXED:
            return None
        current: object = self._consumer.group_metadata()
        return group if group is not None else current

    def still_current(self, group: object) -> bool:
        return _same_generation(group, self._consumer.group_metadata())

    def rewind(self, timeout_s: float) -> None:
        """Seek each assigned partition to its committed offset (the start when none), so
        the records of an aborted transaction are read again."""
        self._batch_group = None
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

        The position is the subscription state's (read, never fetched: the public
        ``position()`` may block on a coordinator round trip). It is known from the committed
        offset as soon as a poll after the assignment has looked it up, before any fetch,
        and a re-assigned partition starts from a fresh state, so no stale value survives.
        """
        lag: dict[TopicPartition, int] = {}
        subscription = self._consumer._subscription  # private, read-only: see the docstring
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            try:
                position = subscription.position(tp)
            except KeyError:  # revoked between the two calls
                continue
            if highwater is not None and position is not None:
                lag[TopicPartition(tp.topic, tp.partition)] = max(0, highwater - position.offset)
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


class KafkaSink:
    def __init__(self, settings: WorkerSettings, **overrides: Any) -> None:
        """``overrides``: more producer settings (the transactional sink's)."""
        self._producer = KafkaProducer(
            **settings.client_config(),
            client_id=f"sentistream-worker-{settings.group_id}",
            acks="all",
            enable_idempotence=True,
            allow_auto_create_topics=False,
            linger_ms=2,
            batch_size=256 * 1024,
            max_request_size=DEFAULT_MAX_REQUEST_BYTES,
            max_in_flight_requests_per_connection=5,
            delivery_timeout_ms=120_000,
            **overrides,
        )
        self._partition_counts: dict[str, int] = {}

    def _partition_for(self, topic: str, hint: int | None) -> int | None:
        if hint is None:
            return None
        count = self._partition_counts.get(topic)
        if count is None:
            partitions = self._producer.partitions_for(topic)
            count = len(partitions)
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
        """Raises what the producer raises for a record it refuses; :class:`SinkUnavailable`
        when it cannot take any record (metadata or buffer space not available in
        ``max_block_ms``, or closed)."""
        try:
            future: Delivery = self._producer.send(
                topic,
                key=key,
                value=value,
                headers=list(headers),
                partition=self._partition_for(topic, partition_hint),
            )
        except (KafkaTimeoutError, IllegalStateError) as exc:
            raise SinkUnavailable(f"the producer cannot take records for {topic}: {exc}") from exc
        return future

    def flush(self, timeout_s: float) -> bool:
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            return False
        return True

    def close(self, timeout_s: float) -> None:
        """Close, abandoning what is still unacknowledged after ``timeout_s`` (it was not
        committed, so a restart redoes it)."""
        try:
            self._producer.close(timeout=max(0.0, timeout_s))
        except KafkaTimeoutError:
            log.warning("producer closed with deliveries still pending (not committed)")
            # kafka-python 3.0.12's close() flushes first and raises when the time is up,
            # before it stops its sender; its __del__ then closes again at exit and prints a
            # traceback. Finish the close without waiting.
            self._producer._sender.force_close()
            self._producer._closed = True


def connect_with_retry(
    connect: Callable[[], T],
    what: str,
    *,
    should_stop: Callable[[], bool],
    initial_backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    sleep: Callable[[float], object] = time.sleep,
    retry_on: tuple[type[BaseException], ...] = (KafkaError,),
) -> T | None:
    """Call ``connect`` until it succeeds, backing off exponentially, while it raises one of
    ``retry_on`` (the client's errors); None if told to stop."""
    backoff = initial_backoff_s
    while not should_stop():
        try:
            return connect()
        except retry_on as exc:
            log.warning("%s: Kafka unavailable (%s); retrying in %.1f s", what, exc, backoff)
            sleep(backoff)
            backoff = min(max_backoff_s, backoff * 2)
    return None


def create_topics(settings: WorkerSettings, partitions: Mapping[str, int]) -> None:
    """Create the topics ``name -> partitions`` (replication factor 1) and wait for them."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.client_config(), client_id="sentistream-worker-admin")
    try:
        admin.create_topics(
            {name: {"num_partitions": n, "replication_factor": 1} for name, n in partitions.items()}
        )
        admin.wait_for_topics(list(partitions), timeout_ms=30_000)
    finally:
        admin.close()
