"""kafka-python adapters for the loop's :class:`Source` and :class:`Sink`.

Client settings chosen here (and why):

* consumer: auto-commit off (the loop commits after delivery), ``auto_offset_reset=earliest``
  (a new group starts at the beginning rather than skipping what is already there),
  ``fetch_max_wait_ms=10`` so a lone tweet is not held back for the broker's 500 ms default,
  ``max_poll_interval_ms`` well above any batch's time.
* producer: ``acks=all`` and idempotence, so retries neither lose nor duplicate a label,
  ``linger_ms=2`` to let a micro-batch's labels share a request without adding visible latency,
  ``lz4``-free (no compression) since labels are small and CPU is the bottleneck.
* Rebalance listeners run on kafka-python's IO thread: ours only log, never commit or block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    RetriableError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata

from sentistream.worker.loop import CommitDeferred, CommitRefused, Delivery, TopicPartition
from sentistream.worker.messages import InputRecord
from sentistream.worker.settings import WorkerSettings

__all__ = ["KafkaSink", "KafkaSource", "connect_with_retry"]

T = TypeVar("T")

#: A commit that Kafka cannot take within this long is retried at the next commit interval,
#: so an outage never holds the loop (and /healthz) for kafka-python's default timeouts.
COMMIT_TIMEOUT_MS = 5_000

log = logging.getLogger(__name__)

_REFUSED = (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


class _LoggingListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked: %s", _names(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", _names(assigned))


def _names(partitions: Any) -> str:
    return ", ".join(sorted(f"{tp.topic}-{tp.partition}" for tp in partitions)) or "none"


class KafkaSource:
    def __init__(self, settings: WorkerSettings) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            group_id=settings.group_id,
            client_id=f"sentistream-worker-{settings.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_batch_size,
            fetch_max_wait_ms=10,
            max_poll_interval_ms=300_000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        self._consumer.subscribe([settings.input_topic], listener=_LoggingListener())
        self._positions: dict[TopicPartition, int] = {}

    def poll(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        out: dict[TopicPartition, Sequence[InputRecord]] = {}
        for tp, records in polled.items():
            key = TopicPartition(tp.topic, tp.partition)
            out[key] = records
            if records:
                self._positions[key] = records[-1].offset + 1
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        owned = self.assignment()
        to_commit = {
            KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "", -1)
            for tp, offset in offsets.items()
            if tp in owned
        }
        if len(to_commit) < len(offsets):
            log.info(
                "not committing %d partition(s) no longer assigned", len(offsets) - len(to_commit)
            )
        if not to_commit:
            return
        try:
            self._consumer.commit(offsets=to_commit, timeout_ms=COMMIT_TIMEOUT_MS)
        except _REFUSED as exc:
            raise CommitRefused(str(exc)) from exc
        except RetriableError as exc:
            raise CommitDeferred(str(exc)) from exc

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def lag(self) -> Mapping[TopicPartition, int]:
        lag: dict[TopicPartition, int] = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            key = TopicPartition(tp.topic, tp.partition)
            position = self._positions.get(key)
            if highwater is not None and position is not None:
                lag[key] = max(0, highwater - position)
        return lag

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaSink:
    def __init__(self, settings: WorkerSettings) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            client_id=f"sentistream-worker-{settings.group_id}",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            batch_size=256 * 1024,
            max_in_flight_requests_per_connection=5,
            delivery_timeout_ms=120_000,
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
        future: Delivery = self._producer.send(
            topic,
            key=key,
            value=value,
            headers=list(headers),
            partition=self._partition_for(topic, partition_hint),
        )
        return future

    def flush(self, timeout_s: float) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float) -> None:
        self._producer.close(timeout=timeout_s)


def connect_with_retry(
    connect: Callable[[], T],
    what: str,
    *,
    should_stop: Callable[[], bool],
    initial_backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T | None:
    """Call ``connect`` until it succeeds, backing off exponentially; None if told to stop."""
    backoff = initial_backoff_s
    while not should_stop():
        try:
            return connect()
        except KafkaError as exc:
            log.warning("%s: Kafka unavailable (%s); retrying in %.1f s", what, exc, backoff)
            sleep(backoff)
            backoff = min(max_backoff_s, backoff * 2)
    return None
