"""The shared connection settings as librdkafka configuration (confluent-kafka's clients).

:meth:`~sentistream.connection.KafkaConnection.client_config` validates the settings once and
names them as kafka-python does; :func:`librdkafka_config` renames that dictionary for
librdkafka, so both clients reach a cluster from the same flags and variables, and every
check (SASL without a password, a missing certificate file) stays in one place. Pure: no
import of confluent_kafka.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["librdkafka_config"]

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
