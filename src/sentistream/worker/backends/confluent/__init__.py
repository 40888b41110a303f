"""confluent-kafka's (librdkafka's) adapters: source, sink, transactional sink, admin."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentistream.worker.backends import KafkaClient

__all__ = ["client"]


def client() -> KafkaClient:
    """This backend's adapters; ``ImportError`` when confluent-kafka is not installed."""
    import confluent_kafka  # noqa: F401 - fails first, naming the missing library

    from sentistream.worker.backends import KafkaClient
    from sentistream.worker.backends.confluent.admin import create_topics
    from sentistream.worker.backends.confluent.errors import KafkaUnreachable
    from sentistream.worker.backends.confluent.sink import ConfluentSink
    from sentistream.worker.backends.confluent.source import ConfluentSource
    from sentistream.worker.backends.confluent.transactions import ConfluentTransactionalSink

    return KafkaClient(
        "confluent",
        ConfluentSource,
        ConfluentSink,
        ConfluentTransactionalSink,
        create_topics,
        (KafkaUnreachable,),
    )
