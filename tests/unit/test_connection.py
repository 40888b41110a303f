"""The shared connection settings: what kafka-python is given, and how a refused connection is
explained from kafka-python's own log lines (it raises only 'Unable to bootstrap')."""

from __future__ import annotations

import logging
import os

import pytest

from sentistream.connection import FailureWatch, KafkaConnection

# Lines as kafka-python 3.0.12 logs them (seen against tools/kafka/kafka.sh's listeners).
AUTH = (
    "kafka.net.manager",
    "Bootstrap connection to bootstrap-0 failed: [Error 58] SaslAuthenticationFailedError: "
    "SaslAuthenticationFailedError: Authentication failed during authentication due to invalid "
    "credentials with SASL mechanism SCRAM-SHA-512 (backoff 0.34 secs)",
)
UNTRUSTED = (
    "kafka.net.manager",
    "Connection failed: KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] "
    "certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)",
)
NOT_TLS = (
    "kafka.net.manager",
    "Connection failed: KafkaConnectionError: Handshake failed: [SSL: "
    "UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol (_ssl.c:1006)",
)
CLIENT_CERT = (
    "kafka.net.connection",
    "<KafkaConnection node_id=bootstrap-0>: Connection lost: KafkaConnectionError: [SSL: "
    "SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580)",
)
DISCONNECTED = (
    "kafka.net.manager",
    "Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: socket disconnected "
    "(backoff 0.42 secs)",
)

SCRAM = KafkaConnection(
    security_protocol="SASL_SSL", sasl_username="alice", sasl_password="secret-pw"
)
PLAIN = KafkaConnection(security_protocol="PLAINTEXT")


@pytest.fixture(autouse=True)
def no_sentistream_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SENTISTREAM_"):
            monkeypatch.delenv(name)


def watched(*lines: tuple[str, str], connection: KafkaConnection = SCRAM) -> FailureWatch:
    with FailureWatch() as watch:
        for logger, message in lines:
            logging.getLogger(logger).warning(message)
    return watch


def test_a_refused_login_is_named_and_fatal_even_among_disconnects():
    watch = watched(DISCONNECTED, AUTH, DISCONNECTED)
    assert watch.fatal
    why = watch.explain(SCRAM)
    assert why is not None
    assert why.startswith("authentication failed: the broker refused user 'alice'")
    assert "secret-pw" not in why


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (UNTRUSTED, "not trusted (self-signed certificate in certificate chain)"),
        (NOT_TLS, "is it a PLAINTEXT listener?"),
        (CLIENT_CERT, "refused the client certificate"),
    ],
)
def test_tls_failures_are_named_and_fatal(line, expected):
    watch = watched(line)
    assert watch.fatal
    assert expected in (watch.explain(SCRAM) or "")


def test_a_plaintext_client_dropped_at_once_is_told_about_tls_but_retries():
    watch = watched(DISCONNECTED)
    assert not watch.fatal  # a restarting broker drops connections too
    assert "expects TLS" in (watch.explain(PLAIN) or "")
    assert watched(DISCONNECTED).explain(SCRAM) is None


def test_the_watch_leaves_kafka_pythons_loggers_as_it_found_them():
    logger = logging.getLogger("kafka.net.manager")
    before = (logger.level, logger.propagate, list(logger.handlers))
    watched(AUTH)
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_client_config_for_scram_over_tls_with_mtls(tmp_path):
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_text("x")
    connection = KafkaConnection(
        bootstrap_servers="a:9096, b:9096",
        security_protocol="SASL_SSL",
        sasl_username="alice",
        sasl_password="secret-pw",
        ssl_cafile=ca,
        ssl_certfile=cert,
        ssl_keyfile=key,
    )
    assert connection.client_config() == {
        "bootstrap_servers": ["a:9096", "b:9096"],
        "security_protocol": "SASL_SSL",
        "reconnect_backoff_max_ms": 1_000,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "secret-pw",
        "ssl_cafile": str(ca),
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
        "ssl_check_hostname": True,
    }
    assert "secret-pw" not in connection.describe()


def test_a_missing_ca_file_is_refused_before_connecting(tmp_path):
    connection = KafkaConnection(security_protocol="SSL", ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(ValueError, match=r"--ssl-cafile .*nope\.pem: no such file"):
        connection.client_config()


def test_the_environment_a_child_process_gets_rebuilds_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
):
    for name, value in SCRAM.environment().items():
        monkeypatch.setenv(name, value)
    assert KafkaConnection() == SCRAM
