"""Which Kafka client the worker runs on: kafka-python (the default) or confluent-kafka.

Each backend (``kafka_python/``, ``confluent/``) implements the same ports with its own
source, sink, transactional sink and admin; :func:`kafka_client` returns the set the settings
name, importing only that client's library, so the base install never needs confluent-kafka
and a confluent worker never imports kafka-python. What both share is written once in
``tuning.py`` (client settings) and ``shared.py`` (outage logging, batch generation, owned
offsets).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    create_topics: Callable[[WorkerSettings, Mapping[str, int]], None]
    """Create the topics ``name -> partitions`` (replication factor 1) and wait for them."""
    transient: tuple[type[BaseException], ...]
    """Errors of building a client that mean "Kafka not reachable yet": retried."""


def kafka_client(name: KafkaClientName) -> KafkaClient:
    """The adapters of client ``name``; :class:`ClientMissing` when it is not installed.

    Each backend package names its own adapters (``client()``), so this module imports no
    client library."""
    if name == "confluent":
        from sentistream.worker.backends import confluent

        try:
            return confluent.client()
        except ImportError as exc:
            if not (exc.name or "").startswith("confluent_kafka"):
                raise
            raise ClientMissing(
                "--kafka-client confluent needs confluent-kafka: pip install "
                "'sentistream[confluent]'"
            ) from None
    from sentistream.worker.backends import kafka_python

    return kafka_python.client()
