"""`sentistream bench` reaches a secured cluster as every other command does: kcat through a
0600 configuration file, the workers through SENTISTREAM_* variables, no secret in any argv."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from sentistream.bench import kcat, kcat_check, pace
from sentistream.bench.e2e import pace_command
from sentistream.bench.kcat_config import (
    KcatConfigError,
    KcatConnection,
    config_text,
    kcat_connection,
    kcat_properties,
)
from sentistream.bench.workerproc import BenchWorker
from sentistream.cli import cli
from sentistream.connection import ENV_PREFIX, KafkaConnection

PASSWORD = "s3cret-pw=with#odd:chars"
TOPICS = {"input": "in", "output": "out", "dlq": "dlq"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("x")
    return files


@pytest.fixture
def scram(pem: dict[str, Path]) -> KafkaConnection:
    return KafkaConnection(
        bootstrap_servers="b1:9096, b2:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password=PASSWORD,
        ssl_cafile=pem["ca"],
    )


@pytest.fixture
def mtls(pem: dict[str, Path]) -> KafkaConnection:
    return KafkaConnection(
        bootstrap_servers="b1:9094",
        security_protocol="SSL",
        ssl_cafile=pem["ca"],
        ssl_certfile=pem["cert"],
        ssl_keyfile=pem["key"],
        ssl_check_hostname=False,
    )


@pytest.fixture
def with_kcat(monkeypatch: pytest.MonkeyPatch) -> None:
    """kcat 'installed', so the argv builders work on a machine without it."""
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")


# -- the configuration file ---------------------------------------------------------------------


def test_kcat_gets_scram_over_tls_in_its_file_and_only_the_hostname_check_on_argv(
    scram: KafkaConnection, pem: dict[str, Path]
) -> None:
    properties = kcat_properties(scram)
    assert config_text(properties).splitlines() == [
        "bootstrap.servers=b1:9096,b2:9096",
        "security.protocol=sasl_ssl",
        "reconnect.backoff.max.ms=1000",
        "sasl.mechanism=SCRAM-SHA-512",
        "sasl.username=alice",
        f"sasl.password={PASSWORD}",
        f"ssl.ca.location={pem['ca']}",
    ]
    # kcat 1.7.1 ignores this one in a -F file; it is no secret.
    assert properties["ssl.endpoint.identification.algorithm"] == "https"


def test_kcat_gets_mtls_in_its_file(mtls: KafkaConnection, pem: dict[str, Path]) -> None:
    with kcat_connection(mtls) as connection:
        text = connection.config_file.read_text()
    assert text.splitlines() == [
        "bootstrap.servers=b1:9094",
        "security.protocol=ssl",
        "reconnect.backoff.max.ms=1000",
        f"ssl.ca.location={pem['ca']}",
        f"ssl.certificate.location={pem['cert']}",
        f"ssl.key.location={pem['key']}",
    ]
    assert connection.properties == ("ssl.endpoint.identification.algorithm=none",)
    assert connection.args() == [
        "-F",
        str(connection.config_file),
        "-X",
        "ssl.endpoint.identification.algorithm=none",
    ]


def test_the_file_is_the_owners_alone_and_removed_afterwards(scram: KafkaConnection) -> None:
    old = os.umask(0o000)  # the most permissive umask must not widen the file
    try:
        with kcat_connection(scram) as connection:
            path = connection.config_file
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            assert f"sasl.password={PASSWORD}\n" in path.read_text()
    finally:
        os.umask(old)
    assert not path.exists()
    assert not path.parent.exists()


def test_the_file_is_removed_when_the_run_fails(scram: KafkaConnection) -> None:
    with pytest.raises(RuntimeError), kcat_connection(scram) as connection:
        raise RuntimeError("the run failed")
    assert not connection.config_file.parent.exists()


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("trailing space ", "whitespace"),
        ("two\nlines", "line break"),
        ("back\\=slash", "reads as = or :"),
        ("x" * 600, "longer than"),
    ],
)
def test_a_value_kcat_would_not_read_back_intact_is_refused_without_showing_it(
    password: str, problem: str
) -> None:
    with pytest.raises(KcatConfigError, match=problem) as caught:
        config_text({"sasl.password": password})
    assert "sasl.password" in str(caught.value)
    assert password not in str(caught.value)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="needs kcat")
def test_kcat_reads_the_file_and_the_argv_property_as_meant(mtls: KafkaConnection) -> None:
    with kcat_connection(mtls) as target:
        dump = subprocess.run(
            [kcat.kcat(), *target.args(), "-X", "dump"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    settings = dict(line.split(" = ", 1) for line in dump.splitlines() if " = " in line)
    assert settings["metadata.broker.list"] == "b1:9094"
    assert settings["security.protocol"] == "ssl"
    assert settings["ssl.key.location"] == str(mtls.ssl_keyfile)
    assert settings["ssl.endpoint.identification.algorithm"] == "none"


# -- no secret on a command line ----------------------------------------------------------------


def _argvs(target: KcatConnection, connection: KafkaConnection) -> Iterator[list[str]]:
    yield kcat.produce_args(target, "in", linger_ms=1)
    yield kcat.consume_args(target, "out", "%T\t%s\n")
    yield kcat_check.check_args(target, 10)
    yield pace_command(target, "in", 1_000.0, Path("/tmp/payloads.tsv"))
    yield BenchWorker(connection, Path("models/m"), TOPICS, "g").command()


@pytest.mark.usefixtures("with_kcat")
def test_no_argv_the_bench_builds_holds_the_password(scram: KafkaConnection) -> None:
    with kcat_connection(scram) as target:
        argvs = list(_argvs(target, scram))
    assert len(argvs) == 5
    for argv in argvs:
        assert not any(PASSWORD in arg or "s3cret" in arg for arg in argv), argv


@pytest.mark.usefixtures("with_kcat")
def test_nor_with_the_password_in_a_file(scram: KafkaConnection, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    connection = scram.model_copy(
        update={"sasl_password": SecretStr(""), "sasl_password_file": secret}
    )
    with kcat_connection(connection) as target:
        assert f"sasl.password={PASSWORD}\n" in target.config_file.read_text()
        for argv in _argvs(target, connection):
            assert not any("s3cret" in arg for arg in argv), argv


@pytest.mark.usefixtures("with_kcat")
def test_the_pacer_gives_its_kcat_the_same_connection(
    mtls: KafkaConnection, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[list[str]] = []

    class FakeKcat:
        def __init__(self, argv: list[str], **_: Any) -> None:
            started.append(argv)
            self.stdin = io.BytesIO()

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeKcat)
    lines = tmp_path / "payloads.tsv"
    lines.write_bytes(b"k\tv\n")
    with kcat_connection(mtls) as target:
        command = pace_command(target, "in", 1_000.0, lines)
        with pytest.raises(SystemExit) as exited:
            pace.main(command[3:])  # after `python -m sentistream.bench.pace`
        assert exited.value.code == 0
        assert started == [kcat.produce_args(target, "in", linger_ms=1)]


# -- the workers ----------------------------------------------------------------------------------


def test_the_workers_get_the_connection_as_variables_and_nothing_stale(
    scram: KafkaConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = BenchWorker(scram, Path("models/m"), TOPICS, "g", {"max_batch_size": "64"})
    inherited = {
        "PATH": "/usr/bin",
        "SENTISTREAM_SSL_KEYFILE": "/stale/client.key",  # not this connection's: dropped
        "SENTISTREAM_MAX_WAIT_MS": "7",  # not a connection setting: kept, as before
    }
    env = worker.environment(inherited)
    assert env["PATH"] == "/usr/bin"
    assert env["SENTISTREAM_MAX_WAIT_MS"] == "7"
    assert "SENTISTREAM_SSL_KEYFILE" not in env
    assert env["SENTISTREAM_SASL_PASSWORD"] == PASSWORD
    assert env["SENTISTREAM_BOOTSTRAP_SERVERS"] == "b1:9096, b2:9096"
    assert env["SENTISTREAM_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["SENTISTREAM_INPUT_TOPIC"] == "in"
    assert env["SENTISTREAM_MAX_BATCH_SIZE"] == "64"
    # The worker rebuilds exactly this connection from them.
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            monkeypatch.setenv(name, value)
    assert KafkaConnection() == scram


# -- the command ----------------------------------------------------------------------------------


def test_bench_refuses_security_settings_for_the_throw_away_plaintext_broker(
    tmp_path: Path,
) -> None:
    data = tmp_path / "tweets.csv"
    data.write_text('"0","1","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","u","hello there"\n')
    result = CliRunner().invoke(
        cli,
        ["bench", "--data", str(data), "--security-protocol", "SASL_SSL", "--out", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "--security-protocol SASL_SSL needs --bootstrap-servers" in result.output


# -- kcat's check before measuring --------------------------------------------------------------

REFUSED = (
    "% Reading configuration from file /tmp/sentistream-kcat-x/kcat.conf\n"
    "%3|1795981428.774|FAIL|rdkafka#producer-1| [thrd:sasl_ssl://127.0.0.1:9096/bootstrap]: "
    "sasl_ssl://127.0.0.1:9096/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
    "(after 322ms in state AUTH_REQ)\n"
    "% ERROR: Failed to acquire metadata: Local: Broker transport failure (Are the brokers "
    "reachable? Also try increasing the metadata timeout with -m <timeout>?)\n"
)


def test_a_refused_scram_login_by_an_old_librdkafka_is_blamed_on_it() -> None:
    why = kcat_check.explain(REFUSED, (2, 0, 2))
    assert why.startswith("the broker refused kcat's login: Authentication failed")
    assert "librdkafka 2.0.2: Kafka 4 brokers refuse its SCRAM login" in why
    assert "fixed in librdkafka 2.6.1" in why


def test_a_refused_login_by_a_current_librdkafka_is_just_refused() -> None:
    why = kcat_check.explain(REFUSED, (2, 16, 0))
    assert why.startswith("the broker refused kcat's login")
    assert "librdkafka 2" not in why


def test_another_failure_is_kcats_last_line() -> None:
    said = "% ERROR: Failed to acquire metadata: Local: Broker transport failure\n"
    assert kcat_check.explain(said, (2, 0, 2)) == said.strip()
    assert kcat_check.explain("", None) == "kcat said nothing"
