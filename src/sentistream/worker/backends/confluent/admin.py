"""Topic administration with confluent-kafka's admin client, so a confluent worker's
``--create-topics`` needs no kafka-python."""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
)

from sentistream.worker.backends.confluent.config import librdkafka_config
from sentistream.worker.settings import WorkerSettings

__all__ = ["create_topics"]

#: How long creating the topics may take, as kafka-python's ``wait_for_topics`` is given.
TIMEOUT_S = 30.0


def create_topics(settings: WorkerSettings, partitions: Mapping[str, int]) -> None:
    """Create the topics ``name -> partitions`` (replication factor 1) and wait for them; one
    that already exists is left as it is."""
    admin = AdminClient(librdkafka_config(settings.client_config()))
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in partitions.items()],
        operation_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
    )
    for future in futures.values():
        try:
            future.result(timeout=TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise
