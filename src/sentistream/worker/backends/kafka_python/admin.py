"""Topic administration with kafka-python's admin client (``create-topics``, the worker's
``--create-topics``)."""

from __future__ import annotations

from collections.abc import Mapping

from kafka import KafkaAdminClient

from sentistream.worker.settings import WorkerSettings

__all__ = ["create_topics"]


def create_topics(settings: WorkerSettings, partitions: Mapping[str, int]) -> None:
    """Create the topics ``name -> partitions`` (replication factor 1) and wait for them."""
    admin = KafkaAdminClient(**settings.client_config(), client_id="sentistream-worker-admin")
    try:
        admin.create_topics(
            {name: {"num_partitions": n, "replication_factor": 1} for name, n in partitions.items()}
        )
        admin.wait_for_topics(list(partitions), timeout_ms=30_000)
    finally:
        admin.close()
