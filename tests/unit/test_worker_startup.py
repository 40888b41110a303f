"""Starting: an unreachable Kafka is said at once, topics are checked, the port is free."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence

import pytest

from sentistream.worker.app.connect import ConnectionState, probe, wait_until_reachable
from sentistream.worker.app.main import EXIT_SETUP, run_worker
from sentistream.worker.core.topics import TopicCheck, check_topics
from sentistream.worker.settings import WorkerSettings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_probe_names_the_server_and_why():
    port = closed_port()
    assert probe([f"127.0.0.1:{port}"]) == f"cannot reach 127.0.0.1:{port} (connection refused)"


def test_probe_is_happy_with_any_listening_server():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert probe([f"127.0.0.1:{closed_port()}", f"127.0.0.1:{port}"]) is None


class _Checks:
    def __init__(self, failures: int, stop: threading.Event | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.stop = stop

    def __call__(self, servers: Sequence[str]) -> str | None:
        self.calls += 1
        if self.stop is not None and self.calls == 3:
            self.stop.set()  # as SIGTERM would, while the worker is waiting
        if self.calls <= self.failures:
            return "cannot reach 127.0.0.1:1 (connection refused)"
        return None


class _RecordingEvent(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()  # never sleeps


def test_an_unreachable_kafka_is_said_at_once_and_retried_with_backoff(
    caplog: pytest.LogCaptureFixture,
):
    stop = _RecordingEvent()
    state = ConnectionState(started_at=0.0)
    caplog.set_level(logging.WARNING, "sentistream")
    assert wait_until_reachable(["127.0.0.1:1"], stop, state, check=_Checks(3))
    assert stop.waits == [0.5, 1.0, 2.0]
    assert caplog.messages[0] == (
        "cannot reach 127.0.0.1:1 (connection refused); retrying in 0.5 s"
    )
    assert state.reachable
    assert state.error is None


def test_a_stop_request_ends_the_wait_at_once():
    stop = _RecordingEvent()
    checks = _Checks(1_000, stop)
    assert not wait_until_reachable(["x:1"], stop, ConnectionState(0.0), check=checks)
    assert checks.calls == 3  # the wait that saw the stop returned True: no fourth attempt


def test_healthz_says_starting_for_a_while_then_unhealthy():
    state = ConnectionState(started_at=100.0)
    assert state.health(101.0, grace_s=30) == (True, "starting")
    state.error = "cannot reach 127.0.0.1:1 (connection refused)"
    ok, detail = state.health(110.0, grace_s=30)
    assert ok
    assert detail == "starting: cannot reach 127.0.0.1:1 (connection refused) for 10 s"
    ok, detail = state.health(131.0, grace_s=30)
    assert not ok
    assert detail == "cannot reach 127.0.0.1:1 (connection refused) for 31 s"


def _check(existing: set[str], create: bool = False) -> TopicCheck:
    return check_topics(
        existing,
        input_topic="tweets",
        output_topic="tweet-labels",
        dlq_topic="tweets.dlq",
        bootstrap_servers="k:9092",
        create=create,
    )


def test_topics_that_exist_pass():
    result = _check({"tweets", "tweet-labels", "tweets.dlq", "other"})
    assert (result.error, result.to_create) == (None, {})


def test_a_missing_topic_is_named_with_the_command_that_creates_it():
    result = _check({"tweets", "tweets.dlq"})
    assert result.missing == {"output": "tweet-labels"}
    assert result.error == (
        "output topic 'tweet-labels' does not exist on k:9092; create them with "
        "`sentistream create-topics --bootstrap-servers k:9092 --input-topic tweets "
        "--output-topic tweet-labels --dlq-topic tweets.dlq` or start the worker with "
        "--create-topics (on a cluster with ACLs, a topic the worker's principal may not "
        "Describe looks missing too)"
    )


def test_a_missing_input_topic_is_refused_too_unless_creating_is_asked_for():
    result = _check({"tweet-labels", "tweets.dlq"})
    assert result.error is not None
    assert result.error.startswith("input topic 'tweets' does not exist")
    created = _check(set(), create=True)
    assert created.error is None
    assert created.to_create == {"tweets": 3, "tweet-labels": 3, "tweets.dlq": 1}


def test_a_metrics_port_in_use_is_one_line_and_exit_2(caplog: pytest.LogCaptureFixture):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = WorkerSettings(metrics_host="127.0.0.1", metrics_port=port)
        caplog.set_level(logging.INFO, "sentistream")
        assert run_worker(settings) == EXIT_SETUP
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"cannot serve /metrics on 127.0.0.1:{port}: Address already in use; "
        "choose another --metrics-port (0: any free)"
    ]
    assert errors[0].exc_info is None
