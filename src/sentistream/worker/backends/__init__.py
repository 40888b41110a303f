"""Which Kafka client the worker runs on: kafka-python (the default) or confluent-kafka.

Both pairs of adapters implement the same ports; :func:`kafka_client` returns the pair the
settings name, importing confluent-kafka only when it is asked for, so the base install
never needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sentistream.worker.core.ports import Sink, TransactionalSink, TransactionalSource
from sentistream.worker.settings import KafkaClientName, WorkerSettings

__all__ = ["ClientMissing", "KafkaClient", "WorkerSink", "WorkerSource", "kafka_client"]


class ClientMissing(Exception):  # noqa: N818
    """The chosen client library is not installed."""


class WorkerSource(TransactionalSource, Protocol):
    """What the worker's start-up needs of a consumer beyond the loop's port."""

    def topics(self) -> set[str]: ...
    def subscribe(self) -> None: ...
    def close(self, timeout_s: float = 5.0) -> None: ...


class WorkerSink(Sink, Protocol):
    def close(self, timeout_s: float) -> None: ...


class WorkerTransactionalSink(TransactionalSink, Protocol):
    def close(self, timeout_s: float) -> None: ...


@dataclass(frozen=True)
class KafkaClient:
    name: KafkaClientName
    source: Callable[[WorkerSettings], WorkerSource]
    sink: Callable[[WorkerSettings], WorkerSink]
    transactional_sink: Callable[[WorkerSettings], WorkerTransactionalSink]
    transient: tuple[type[BaseException], ...]
    """Errors of building a client that mean "Kafka not reachable yet": retried."""


def kafka_client(name: KafkaClientName) -> KafkaClient:
    """The adapters of client ``name``; :class:`ClientMissing` when it is not installed."""
    if name == "confluent":
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            raise ClientMissing(
                "--kafka-client confluent needs confluent-kafka: pip install "
                "'sentistream[confluent]'"
            ) from None
        from sentistream.worker.backends.confluent.io import (
            ConfluentSink,
            ConfluentSource,
            KafkaUnreachable,
        )
        from sentistream.worker.backends.confluent.transactions import ConfluentTransactionalSink

        return KafkaClient(
            name, ConfluentSource, ConfluentSink, ConfluentTransactionalSink, (KafkaUnreachable,)
        )
    from kafka.errors import KafkaError

    from sentistream.worker.backends.kafka_python.io import KafkaSink, KafkaSource
    from sentistream.worker.backends.kafka_python.transactions import KafkaTransactionalSink

    return KafkaClient(name, KafkaSource, KafkaSink, KafkaTransactionalSink, (KafkaError,))
