"""The shared connection settings as librdkafka configuration (confluent-kafka's clients).

:meth:`~sentistream.connection.KafkaConnection.client_config` validates the settings once and
names them as kafka-python does; :func:`librdkafka_config` renames that dictionary for
librdkafka, so both clients reach a cluster from the same flags and variables, and every
check (SASL without a password, a missing certificate file) stays in one place; and
:func:`consumer_properties` / :func:`producer_properties` render the shared tuning
(:mod:`sentistream.worker.backends.tuning`) in librdkafka's names. Pure: no import of
confluent_kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sentistream.worker.backends.tuning import consumer_tuning, producer_tuning
from sentistream.worker.settings import WorkerSettings

__all__ = ["consumer_properties", "librdkafka_config", "producer_properties"]

#: librdkafka's own log lines (served by poll/consume), under the worker's logging; the
#: worker quiets it as it quiets kafka-python's (``app.main.quiet_kafka_logs``).
LIBRDKAFKA_LOG = logging.getLogger("confluent_kafka")

# kafka-python keyword -> librdkafka property, for the keys whose value passes unchanged.
_RENAMED = {
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "reconnect_backoff_max_ms": "reconnect.backoff.max.ms",
}


def librdkafka_config(client_config: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka properties for the kafka-python keyword arguments ``client_config`` (as
    :meth:`KafkaConnection.client_config` returns them).

    Raises :class:`ValueError` for a key it does not know, so a connection setting added for
    kafka-python cannot be silently dropped for librdkafka.
    """
    config: dict[str, Any] = {}
    for name, value in client_config.items():
        if name == "bootstrap_servers":
            config["bootstrap.servers"] = ",".join(value)
        elif name == "security_protocol":
            config["security.protocol"] = str(value).lower()
        elif name == "ssl_check_hostname":
            # librdkafka checks the broker's name with this; "none" turns the check off.
            config["ssl.endpoint.identification.algorithm"] = "https" if value else "none"
        elif name in _RENAMED:
            config[_RENAMED[name]] = value
        else:
            raise ValueError(f"no librdkafka equivalent known for the client setting {name!r}")
    return config


def consumer_properties(settings: WorkerSettings) -> dict[str, Any]:
    tuning = consumer_tuning(settings)
    return {
        **librdkafka_config(settings.client_config()),
        "group.id": tuning.group_id,
        "client.id": tuning.client_id,
        "isolation.level": "read_committed" if tuning.read_committed else "read_uncommitted",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": tuning.auto_offset_reset,
        "allow.auto.create.topics": False,
        "fetch.wait.max.ms": tuning.fetch_max_wait_ms,
        "fetch.min.bytes": tuning.fetch_min_bytes,
        "max.poll.interval.ms": tuning.max_poll_interval_ms,
        "session.timeout.ms": tuning.session_timeout_ms,
        "heartbeat.interval.ms": tuning.heartbeat_interval_ms,
        "topic.metadata.refresh.interval.ms": tuning.metadata_max_age_ms,
        "logger": LIBRDKAFKA_LOG,
    }


def producer_properties(
    settings: WorkerSettings, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``overrides``: more producer properties (the transactional sink's)."""
    tuning = producer_tuning(settings)
    return {
        **librdkafka_config(settings.client_config()),
        "client.id": tuning.client_id,
        "acks": "all",
        "enable.idempotence": True,
        "allow.auto.create.topics": False,
        "linger.ms": tuning.linger_ms,
        "batch.size": tuning.batch_size_bytes,
        "message.max.bytes": tuning.max_request_bytes,
        "max.in.flight.requests.per.connection": tuning.max_in_flight_requests,
        "delivery.timeout.ms": tuning.delivery_timeout_ms,
        "compression.type": tuning.compression,
        # Keys land where the Java and kafka-python clients put them.
        "partitioner": "murmur2_random",
        "logger": LIBRDKAFKA_LOG,
        **(overrides or {}),
    }
