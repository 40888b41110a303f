"""`produce`, `tail` and `create-topics` against the test broker, which auto-creates topics
(auto.create.topics.enable=true, Kafka's default): a missing topic is refused, not created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

from kafka import KafkaAdminClient, KafkaProducer

from tests.integration.conftest import REPO_ROOT, TopicFactory

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


def _label(text: str, offset: int) -> bytes:
    return json.dumps(
        {
            "text": text,
            "label": "positive",
            "probabilities": {"negative": 0.1, "positive": 0.9},
            "source": {"topic": "tweets", "partition": 0, "offset": offset},
        }
    ).encode()


def _send(producer: KafkaProducer, topic: str, texts: list[str]) -> None:
    for n, text in enumerate(texts):
        producer.send(topic, _label(text, n))
    producer.flush()


def test_tail_shows_every_label_written_after_its_header_and_none_before(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    """What the demo relies on: start tail, wait for its header, then produce."""
    topic = topic_factory(partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    _send(producer, topic, [f"earlier {n}" for n in range(5)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTISTREAM_")}
    args = ["tail", "--output-topic", topic, "--bootstrap-servers", kafka_bootstrap]
    tail = subprocess.Popen(
        [sys.executable, "-m", "sentistream.cli", *args, "--max", "3", "--timeout", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert tail.stdout is not None
        header = tail.stdout.readline()
        assert header.split() == ["label", "prob", "source", "text"], tail.stderr
        _send(producer, topic, [f"later {n}" for n in range(3)])  # at once
        out, err = tail.communicate(timeout=60)
    finally:
        tail.kill()
        producer.close()
    assert tail.returncode == 0, err
    assert sorted(line.split()[-1] for line in out.splitlines()) == ["0", "1", "2"]
    assert all(line.split()[-2] == "later" for line in out.splitlines()), out
