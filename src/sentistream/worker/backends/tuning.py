"""The client tuning both backends share: one record each for the consumer and the producer.

Each backend renders these records in its client's names (``kafka_python/config.py``,
``confluent/config.py``), so a value is chosen, and explained, once:

* consumer: auto-commit off (the loop commits after delivery); ``earliest`` for a new group
  (it starts at the beginning rather than skipping what is already there); a fetch the
  broker answers as soon as one byte is there and holds at most 500 ms when nothing comes
  (``--fetch-min-bytes``, ``--fetch-max-wait-ms``), so a tweet ends the wait at once and an
  idle consumer sends 2 fetches a second, not 100; a poll interval
  well above any batch's time; a 5 s metadata refresh, so a group formed before its topic's
  partitions were in the metadata rebalances within seconds when they appear; 8 s to reach
  the cluster at start before the worker says why it cannot; ``read_committed`` unless
  ``--isolation-level read_uncommitted`` asks otherwise (exactly-once always reads committed).
* producer: ``acks=all`` and idempotence, so retries neither lose nor duplicate a label; a
  2 ms linger and 256 KiB batches so a micro-batch's labels share requests; compression as
  ``--output-compression`` says (none by default: labels are small and CPU is the
  bottleneck); at most 5 requests in flight (the most idempotence keeps in order).
* neither client auto-creates topics: the worker checks at start that its topics exist
  (:mod:`sentistream.worker.core.topics`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sentistream.worker.core.loop import DEFAULT_MAX_REQUEST_BYTES
from sentistream.worker.settings import WorkerSettings

__all__ = ["ConsumerTuning", "ProducerTuning", "consumer_tuning", "producer_tuning"]


@dataclass(frozen=True)
class ConsumerTuning:
    group_id: str
    client_id: str
    read_committed: bool
    max_poll_records: int
    auto_offset_reset: str = "earliest"
    fetch_max_wait_ms: int = 500
    fetch_min_bytes: int = 1
    max_poll_interval_ms: int = 300_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    metadata_max_age_ms: int = 5_000
    bootstrap_timeout_s: float = 8.0


@dataclass(frozen=True)
class ProducerTuning:
    client_id: str
    compression: str = "none"
    linger_ms: int = 2
    batch_size_bytes: int = 256 * 1024
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_in_flight_requests: int = 5
    delivery_timeout_ms: int = 120_000


def client_id(settings: WorkerSettings) -> str:
    return f"sentistream-worker-{settings.group_id}"


def consumer_tuning(settings: WorkerSettings) -> ConsumerTuning:
    return ConsumerTuning(
        group_id=settings.group_id,
        client_id=client_id(settings),
        # Exactly-once always reads only committed input: a label must never come from a
        # tweet its producer took back.
        read_committed=settings.exactly_once or settings.isolation_level == "read_committed",
        max_poll_records=settings.max_batch_size,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        fetch_min_bytes=settings.fetch_min_bytes,
    )


def producer_tuning(settings: WorkerSettings) -> ProducerTuning:
    return ProducerTuning(client_id=client_id(settings), compression=settings.output_compression)
