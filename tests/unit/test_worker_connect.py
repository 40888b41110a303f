"""Building the Kafka clients with retry (app/connect): transient failures retried, others not."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaConnectionError

from sentistream.worker.app.connect import connect_with_retry

# -- connecting with retry --------------------------------------------------------------------


class _FlakyConnect:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaConnectionError("no broker")
        return "client"


RETRY = (KafkaConnectionError,)


def test_connect_with_retry_backs_off_exponentially_until_it_connects():
    sleeps: list[float] = []
    connect = _FlakyConnect(failures=2)
    client = connect_with_retry(
        connect, "consumer", should_stop=lambda: False, sleep=sleeps.append, retry_on=RETRY
    )
    assert client == "client"
    assert connect.calls == 3
    assert sleeps == [0.5, 1.0]


def test_connect_with_retry_caps_the_backoff():
    sleeps: list[float] = []
    connect = _FlakyConnect(failures=6)
    client = connect_with_retry(
        connect,
        "producer",
        should_stop=lambda: False,
        initial_backoff_s=0.5,
        max_backoff_s=4.0,
        sleep=sleeps.append,
        retry_on=RETRY,
    )
    assert client == "client"
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_connect_with_retry_gives_up_with_none_when_told_to_stop():
    sleeps: list[float] = []
    connect = _FlakyConnect(failures=1_000)
    assert (
        connect_with_retry(
            connect,
            "consumer",
            should_stop=lambda: len(sleeps) >= 3,
            sleep=sleeps.append,
            retry_on=RETRY,
        )
        is None
    )
    assert connect.calls == 3
    assert connect_with_retry(connect, "consumer", should_stop=lambda: True, retry_on=RETRY) is None
    assert connect.calls == 3


def test_connect_with_retry_does_not_retry_other_errors():
    def connect() -> str:
        raise ValueError("bad bootstrap_servers")

    sleeps: list[float] = []
    with pytest.raises(ValueError, match="bootstrap"):
        connect_with_retry(
            connect, "consumer", should_stop=lambda: False, sleep=sleeps.append, retry_on=RETRY
        )
    assert sleeps == []
