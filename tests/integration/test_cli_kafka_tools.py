"""`produce`, `tail` and `create-topics` against the test broker, which auto-creates topics
(auto.create.topics.enable=true, Kafka's default): a missing topic is refused, not created."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from kafka import KafkaAdminClient

from tests.integration.conftest import REPO_ROOT

DEMO = REPO_ROOT / "examples" / "demo-tweets.csv"


def sentistream(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTISTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "sentistream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
    )


def test_produce_and_tail_refuse_a_missing_topic_and_leave_it_missing(
    kafka_bootstrap: str, kafka_admin: KafkaAdminClient
) -> None:
    name = f"missing-{uuid.uuid4().hex[:10]}"
    for command, flag in (
        (["produce", "--file", str(DEMO)], "--input-topic"),
        (
            ["tail", "--timeout", "5"],
            "--output-topic",
        ),
    ):
        started = time.monotonic()
        done = sentistream(*command, flag, name, "--bootstrap-servers", kafka_bootstrap)
        assert time.monotonic() - started < 20
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""
        assert done.stderr == (
            f"Error: topic {name!r} does not exist on {kafka_bootstrap}; create it with "
            f"`sentistream create-topics --bootstrap-servers {kafka_bootstrap} {flag} {name}` "
            "(or start the worker with --create-topics)\n"
        )
    assert name not in kafka_admin.list_topics()
