"""A kafka-python client for a command, or one line that says why there is none."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from sentistream.connection import ConnectionSettingsError, KafkaConnection
from sentistream.worker.app.connect import probe
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

__all__ = [
    "CONNECT_TIMEOUT_S",
    "SettingsError",
    "connect",
    "topic_names",
    "topic_partitions",
    "worker_settings",
]

T = TypeVar("T")

# How long produce, tail and create-topics wait for a broker to answer before they give up.
CONNECT_TIMEOUT_S = 5.0


class SettingsError(click.ClickException):
    """Connection settings that cannot work: one line, exit 2 (a usage error, as the worker
    exits for the same settings), before anything is tried."""

    exit_code = 2


def _addresses(bootstrap_servers: str) -> list[str]:
    """The bootstrap servers, each checked to be ``host`` or ``host:port``."""
    addresses = [server.strip() for server in bootstrap_servers.split(",")]
    for address in addresses:
        _, colon, port = address.rpartition(":")
        if not address or (colon and not port.isdigit()):
            raise SettingsError(f"bootstrap server {address!r} is not host:port")
    return addresses


def connect(make: Callable[[dict[str, Any]], T], connection: KafkaConnection) -> T:
    """A kafka-python client from ``make(config)``, or one line that says why there is none:
    settings that cannot work (:class:`SettingsError`), no bootstrap server accepting a
    connection (said at once, in the worker's words: ``cannot reach HOST:PORT (connection
    refused)``), a broker that does not answer within :data:`CONNECT_TIMEOUT_S`, a refused
    login or TLS handshake.

    kafka-python logs every failed connection attempt itself; those lines are dropped here
    (the error says it once) and its log records do not reach the terminal.
    """
    from sentistream.connection import FailureWatch
    from sentistream.worker.backends.kafka_python.tools import CLIENT_ERRORS

    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(logging.NullHandler())
    kafka_log.propagate = False
    try:
        config = connection.client_config()
    except ConnectionSettingsError as exc:
        raise SettingsError(str(exc)) from exc
    servers = connection.bootstrap_servers
    addresses = _addresses(servers)
    unreachable = probe(addresses, timeout_s=CONNECT_TIMEOUT_S / len(addresses))
    if unreachable is not None:
        raise click.ClickException(f"{unreachable}; {_CHECK}")
    config["bootstrap_timeout_ms"] = int(CONNECT_TIMEOUT_S * 1000)
    with FailureWatch() as watch:
        try:
            return make(config)
        except CLIENT_ERRORS as exc:
            why = watch.explain(connection)
            if why is not None:
                raise click.ClickException(f"cannot connect to Kafka at {servers}: {why}") from exc
            now = (
                probe(addresses)
                or f"{servers} accepts connections but does not answer as a Kafka broker"
            )
            raise click.ClickException(
                f"cannot reach Kafka at {servers} within {CONNECT_TIMEOUT_S:g} s ({now}); {_CHECK}"
            ) from exc


_CHECK = (
    f"check --bootstrap-servers or {ENV_PREFIX}BOOTSTRAP_SERVERS, and that the broker is running"
)


def topic_partitions(connection: KafkaConnection) -> dict[str, int]:
    """Every topic of the cluster (that these credentials may describe) and its partition
    count. The client's errors after connecting (``tools.CLIENT_ERRORS``) propagate."""
    admin = _admin(connection)
    try:
        return {topic["name"]: len(topic["partitions"]) for topic in admin.describe_topics()}
    finally:
        admin.close()


def topic_names(connection: KafkaConnection) -> set[str]:
    """The names of the cluster's topics (those these credentials may describe)."""
    admin = _admin(connection)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def _admin(connection: KafkaConnection) -> Any:
    from sentistream.worker.backends.kafka_python.tools import open_admin

    return connect(lambda config: open_admin(config, "sentistream-admin"), connection)


def worker_settings(connection: KafkaConnection) -> WorkerSettings:
    """The worker's settings with these connection settings and every other at its default
    (for the worker's own functions that take them, such as its topic creation): built
    without reading the environment again, so a worker variable this command does not use
    cannot make it fail."""
    return WorkerSettings.model_construct(**dict(connection))
