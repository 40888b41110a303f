"""The shared tuning (:mod:`sentistream.worker.backends.tuning`) in kafka-python's keyword
arguments."""

from __future__ import annotations

from typing import Any

from sentistream.worker.backends.tuning import consumer_tuning, producer_tuning
from sentistream.worker.settings import WorkerSettings

__all__ = ["consumer_config", "producer_config"]


def consumer_config(settings: WorkerSettings) -> dict[str, Any]:
    tuning = consumer_tuning(settings)
    return {
        **settings.client_config(),
        "isolation_level": "read_committed" if tuning.read_committed else "read_uncommitted",
        "group_id": tuning.group_id,
        "client_id": tuning.client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": tuning.auto_offset_reset,
        "allow_auto_create_topics": False,
        "max_poll_records": tuning.max_poll_records,
        "fetch_max_wait_ms": tuning.fetch_max_wait_ms,
        "fetch_min_bytes": tuning.fetch_min_bytes,
        "max_poll_interval_ms": tuning.max_poll_interval_ms,
        # A refused login or TLS handshake is retried until this; then the worker says why.
        "bootstrap_timeout_ms": int(tuning.bootstrap_timeout_s * 1000),
        "session_timeout_ms": tuning.session_timeout_ms,
        "heartbeat_interval_ms": tuning.heartbeat_interval_ms,
        "metadata_max_age_ms": tuning.metadata_max_age_ms,
    }


def producer_config(settings: WorkerSettings, **overrides: Any) -> dict[str, Any]:
    """``overrides``: more producer settings (the transactional sink's)."""
    tuning = producer_tuning(settings)
    return {
        **settings.client_config(),
        "client_id": tuning.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "allow_auto_create_topics": False,
        "linger_ms": tuning.linger_ms,
        "batch_size": tuning.batch_size_bytes,
        "max_request_size": tuning.max_request_bytes,
        "max_in_flight_requests_per_connection": tuning.max_in_flight_requests,
        "delivery_timeout_ms": tuning.delivery_timeout_ms,
        "compression_type": None if tuning.compression == "none" else tuning.compression,
        **overrides,
    }
