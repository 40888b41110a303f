"""kafka-python's clients for the command-line Kafka tools (``produce``, ``tail``,
``create-topics``, ``bench``'s cluster check), so the commands themselves import no client
library: each takes a client configuration
(:meth:`~sentistream.connection.KafkaConnection.client_config`)."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

__all__ = ["CLIENT_ERRORS", "open_admin", "open_consumer", "open_producer", "read_from"]

CLIENT_ERRORS: tuple[type[BaseException], ...] = (KafkaError,)
"""What these clients raise when Kafka refuses or does not answer (a command says it in one
line)."""


def open_producer(config: dict[str, Any]) -> Any:
    """The producer of a replay: every record acknowledged by all replicas."""
    # A send to a missing topic must not create it (on a broker with auto.create.topics.enable,
    # the default): produce checks that the topic exists first.
    return KafkaProducer(**config, acks="all", linger_ms=5, allow_auto_create_topics=False)


def open_consumer(config: dict[str, Any], *, from_beginning: bool, isolation_level: str) -> Any:
    """The consumer of ``tail``: no group, no commits, never creating a topic.
    :func:`read_from` gives it its topic."""
    return KafkaConsumer(
        **config,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level=isolation_level,
        # Asking for a missing topic's metadata must not create it (on a broker with
        # auto.create.topics.enable, the default): tail says it is missing instead.
        allow_auto_create_topics=False,
    )


def read_from(consumer: Any, topic: str, *, from_beginning: bool, timeout_s: float) -> bool:
    """Point ``consumer`` at every partition of ``topic``, at its first record or at its end
    as of now (waiting up to ``timeout_s`` for the offsets), so that "labels written after
    tail starts" means after this call returned. False when the cluster has no such topic (or
    one these credentials may not describe). Partitions added later are not followed."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        return False
    assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
    consumer.assign(assigned)
    if from_beginning:
        consumer.seek_to_beginning(*assigned)
    else:
        consumer.seek_to_end(*assigned)
    for partition in assigned:
        consumer.position(partition, timeout_ms=int(timeout_s * 1000))
    return True


def open_admin(config: dict[str, Any], client_id: str) -> Any:
    return KafkaAdminClient(**config, client_id=client_id)
