"""kafka-python's adapters: source, sink, transactional sink, admin."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentistream.worker.backends import KafkaClient

__all__ = ["client"]


def client() -> KafkaClient:
    """This backend's adapters."""
    from kafka.errors import KafkaError

    from sentistream.worker.backends import KafkaClient
    from sentistream.worker.backends.kafka_python.admin import create_topics
    from sentistream.worker.backends.kafka_python.sink import KafkaSink
    from sentistream.worker.backends.kafka_python.source import connect_source
    from sentistream.worker.backends.kafka_python.transactions import KafkaTransactionalSink

    return KafkaClient(
        "kafka-python",
        connect_source,
        KafkaSink,
        KafkaTransactionalSink,
        create_topics,
        (KafkaError,),
    )
