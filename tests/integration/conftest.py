"""Fixtures for tests that talk to a real Apache Kafka broker.

Every test collected under ``tests/integration`` is marked ``integration`` automatically, so
``pytest -m "not integration"`` runs the fast suite only.

The broker comes from ``KAFKA_BOOTSTRAP_SERVERS`` when that is set (for example the
docker-compose broker, or one started with ``tools/kafka/kafka.sh start``). Otherwise the
session starts its own single-node KRaft broker with ``tools/kafka/kafka.sh`` on free ports
and a state directory under pytest's tmp dir, so it never collides with a developer's broker
on 9092, and stops it when the session ends.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import uuid
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from sentistream.bench.e2e import Broker, Session, plaintext
from tests.integration.worker_process import Topics, WorkerProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO_ROOT / "tools" / "kafka" / "kafka.sh"
KAFKA_POM = REPO_ROOT / "tools" / "kafka" / "pom.xml"
START_TIMEOUT_S = int(os.environ.get("KAFKA_START_TIMEOUT", "90"))
# A first run downloads ~43 MB of jars with mvn before starting the broker.
FETCH_TIMEOUT_S = 600
TOPIC_READY_TIMEOUT_MS = 30_000

_INTEGRATION_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Hooks in a conftest see every collected item, so select ours by path.
    for item in items:
        if _INTEGRATION_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class ScriptBroker:
    """A broker managed by tools/kafka/kafka.sh: the environment that addresses it."""

    port: int
    controller_port: int
    state_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_STATE_DIR": str(self.state_dir),
            "KAFKA_START_TIMEOUT": str(START_TIMEOUT_S),
        }

    def run(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_kafka_sh(command, self.env, timeout)


def run_kafka_sh(
    command: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_SH), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_ports(count: int) -> list[int]:
    """Distinct ports that were free a moment ago (held together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _jars_cached() -> bool:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text())
    version = os.environ.get("KAFKA_VERSION") or (match.group(1) if match else "")
    return (REPO_ROOT / ".cache" / "kafka" / version / "lib" / ".complete").is_file()


def skip_reason_for_missing_tools() -> str | None:
    if shutil.which("java") is None:
        return (
            "integration tests need Java 17+ to run the Kafka broker "
            "(Debian: apt-get install openjdk-17-jre-headless), "
            "or set KAFKA_BOOTSTRAP_SERVERS to a running broker"
        )
    if shutil.which("mvn") is None and not _jars_cached():
        return (
            "integration tests need Maven to fetch the Kafka jars once "
            "(Debian: apt-get install maven), "
            "or set KAFKA_BOOTSTRAP_SERVERS to a running broker"
        )
    return None


@pytest.fixture(scope="session")
def kafka_script_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptBroker | None]:
    """The broker this session started with kafka.sh, or None when KAFKA_BOOTSTRAP_SERVERS is
    set (then the broker belongs to someone else)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield None
        return
    reason = skip_reason_for_missing_tools()
    if reason is not None:
        pytest.skip(reason)

    port, controller_port = free_ports(2)
    broker = ScriptBroker(
        port=port,
        controller_port=controller_port,
        state_dir=tmp_path_factory.mktemp("kafka") / "state",
    )
    started = broker.run("start", timeout=FETCH_TIMEOUT_S + START_TIMEOUT_S)
    if started.returncode != 0:
        broker.run("stop")
        pytest.fail(
            f"tools/kafka/kafka.sh start failed (exit {started.returncode})\n"
            f"--- stdout ---\n{started.stdout}\n--- stderr ---\n{started.stderr}",
            pytrace=False,
        )
    try:
        yield broker
    finally:
        stopped = broker.run("stop")
        if stopped.returncode != 0:
            warnings.warn(
                f"kafka.sh stop failed (exit {stopped.returncode}): {stopped.stderr}",
                stacklevel=1,
            )


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_script_broker: ScriptBroker | None) -> str:
    """Bootstrap servers of a real Kafka broker, e.g. ``127.0.0.1:40123``."""
    if kafka_script_broker is None:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    return kafka_script_broker.bootstrap


@pytest.fixture
def kafka_sh() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``tools/kafka/kafka.sh COMMAND`` with extra environment: ``kafka_sh("status",
    KAFKA_PORT="1234")`` -> CompletedProcess (text, captured, never raises on exit code)."""

    def run(command: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return run_kafka_sh(command, {**os.environ, **env}, timeout)

    return run


@pytest.fixture
def free_port_pair() -> tuple[int, int]:
    """Two distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    first, second = free_ports(2)
    return first, second


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="sentistream-tests")
    try:
        yield admin
    finally:
        admin.close()


TopicFactory = Callable[..., str]


@pytest.fixture
def topic_factory(
    kafka_admin: KafkaAdminClient, request: pytest.FixtureRequest
) -> Iterator[TopicFactory]:
    """Create uniquely named topics: ``topic_factory(partitions=3) -> name``.

    Returns once broker metadata lists the topic with a leader for every partition. The
    topics are deleted when the test ends.
    """
    created: list[str] = []
    test_slug = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:80].strip("-")

    def make(partitions: int = 1, *, prefix: str | None = None) -> str:
        name = f"{prefix or test_slug}-{uuid.uuid4().hex[:10]}"
        # kafka-python 3.0 deprecates lists of NewTopic; the dict form is its replacement.
        kafka_admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}})
        created.append(name)
        kafka_admin.wait_for_topics([name], timeout_ms=TOPIC_READY_TIMEOUT_MS)
        return name

    yield make

    if created:
        try:
            kafka_admin.delete_topics(created)
        except KafkaError as exc:  # cleanup only: a leftover test topic is harmless
            warnings.warn(f"could not delete test topics {created}: {exc!r}", stacklevel=1)


@pytest.fixture
def topics(topic_factory: TopicFactory) -> Topics:
    """Fresh input (3 partitions), output (3) and dead-letter (1) topics and a group id."""
    return Topics(
        input=topic_factory(partitions=3, prefix="in"),
        output=topic_factory(partitions=3, prefix="out"),
        dlq=topic_factory(partitions=1, prefix="dlq"),
    )


@pytest.fixture
def kafka_client() -> str:
    """The worker's ``--kafka-client``; a test marked ``@both_clients`` (worker_process) runs
    once per client, every other test on the default."""
    return "kafka-python"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so a fixture's teardown knows the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def start_worker(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    topics: Topics,
    tmp_path: Path,
    kafka_client: str,
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``sentistream worker`` processes on ``topics`` (with ``kafka_client`` unless a
    ``kafka_client`` setting is given); all are killed at the end. When the test failed, the
    end of each worker's log is printed (pytest shows it under "Captured stdout teardown"),
    whatever the assertion that failed had in its message."""
    started: list[WorkerProcess] = []

    def start(**settings: str) -> WorkerProcess:
        settings.setdefault("kafka_client", kafka_client)
        worker = WorkerProcess(kafka_bootstrap, topics, tmp_path, **settings)
        started.append(worker)
        return worker

    yield start
    report = getattr(request.node, "report_call", None)
    for worker in started:
        if report is not None and report.failed:
            print(f"--- the end of {worker.log_path.name} ---\n{worker.log()}")
        worker.close()


@dataclass(frozen=True)
class SecuredBroker:
    """A broker of its own with a SASL_SSL (SCRAM-SHA-512) and an SSL (mTLS) listener beside
    the plaintext one, and the throw-away CA and client files kafka.sh made for it. It
    authorizes with ACLs: every client is a super user but :attr:`ACL_USER`, who may do only
    what a test grants it."""

    ACL_USER: ClassVar[str] = "limited"

    broker: ScriptBroker
    sasl_ssl_port: int
    ssl_port: int

    @property
    def tls(self) -> Path:
        return self.broker.state_dir / "tls"

    @property
    def plaintext(self) -> str:
        return self.broker.bootstrap

    def client_env(self) -> dict[str, str]:
        """The SENTISTREAM_* variables of a SCRAM client (kafka.sh writes them)."""
        env = {}
        for line in (self.tls / "client.env").read_text().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                env[name] = value
        return env

    def acl_user_env(self) -> dict[str, str]:
        """As :meth:`client_env`, logged in as the user without super-user rights."""
        return {**self.client_env(), "SENTISTREAM_SASL_USERNAME": self.ACL_USER}

    def mtls_env(self) -> dict[str, str]:
        return {
            "SENTISTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.ssl_port}",
            "SENTISTREAM_SECURITY_PROTOCOL": "SSL",
            "SENTISTREAM_SSL_CAFILE": str(self.tls / "ca.pem"),
            "SENTISTREAM_SSL_CERTFILE": str(self.tls / "client.pem"),
            "SENTISTREAM_SSL_KEYFILE": str(self.tls / "client.key"),
        }


@pytest.fixture(scope="session")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    reason = skip_reason_for_missing_tools()
    if reason is not None:
        pytest.skip(reason)
    if shutil.which("openssl") is None:
        pytest.skip("the secured broker's certificates are made with openssl")
    port, controller_port, sasl_ssl_port, ssl_port = free_ports(4)
    broker = ScriptBroker(port, controller_port, tmp_path_factory.mktemp("kafka-tls") / "state")
    env = {
        **broker.env,
        "KAFKA_SASL_SSL_PORT": str(sasl_ssl_port),
        "KAFKA_SSL_PORT": str(ssl_port),
        "KAFKA_ACL_USER": SecuredBroker.ACL_USER,
    }
    started = run_kafka_sh("start", env, timeout=FETCH_TIMEOUT_S + START_TIMEOUT_S)
    if started.returncode != 0:
        run_kafka_sh("stop", env)
        pytest.fail(
            f"kafka.sh start with TLS listeners failed (exit {started.returncode})\n"
            f"{started.stdout}\n{started.stderr}",
            pytrace=False,
        )
    try:
        yield SecuredBroker(broker, sasl_ssl_port, ssl_port)
    finally:
        run_kafka_sh("stop", env)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[ScriptBroker]:
    """A broker of the test's own (its state under the test's tmp dir), for tests that stop
    and start it under a worker."""
    reason = skip_reason_for_missing_tools()
    if reason is not None:
        pytest.skip(reason)
    port, controller = free_ports(2)
    broker = ScriptBroker(port, controller, tmp_path / "kafka-state")
    started = broker.run("start", timeout=FETCH_TIMEOUT_S + START_TIMEOUT_S)
    assert started.returncode == 0, started.stderr
    try:
        yield broker
    finally:
        broker.run("stop")


@pytest.fixture
def bench_session(kafka_bootstrap: str) -> Iterator[Session]:
    """The benchmark's session on the test broker (its kcat reads and writes the topics)."""
    if shutil.which("kcat") is None:
        message = "the benchmark needs kcat: apt-get install -y kcat (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    session = Session(Broker(plaintext(kafka_bootstrap), None))
    yield session
    session.close()
