"""Reading a whole topic once, as it is now: every partition assigned (no group), from the
beginning to the end offsets taken at the start, ``read_committed`` (what downstream readers
of an exactly-once writer see). For ``sentistream relabel --compare-with``."""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaTimeoutError

from sentistream.worker.settings import WorkerSettings

__all__ = ["read_topic"]


def read_topic(
    settings: WorkerSettings, topic: str, *, timeout_s: float = 600.0
) -> Iterator[bytes | None]:
    """The values of ``topic`` up to its end offsets as they were when reading started.
    ``KafkaTimeoutError`` when that takes longer than ``timeout_s``."""
    consumer = KafkaConsumer(
        **settings.client_config(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=2000,
        client_id="sentistream-relabel-reader",
    )
    try:
        tps = [KafkaTopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        left = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        while left:
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"reading {topic} took longer than {timeout_s:g} s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield record.value
            left = {tp for tp in left if consumer.position(tp) < ends[tp]}
    finally:
        consumer.close(autocommit=False)
