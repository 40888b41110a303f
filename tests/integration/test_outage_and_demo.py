"""A broker outage under a running worker, and `make demo` from start to clean exit.

Both start brokers of their own (not the session's), since they stop them on purpose.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from tests.integration.conftest import (
    REPO_ROOT,
    ScriptBroker,
    free_ports,
    skip_reason_for_missing_tools,
)
from tests.integration.worker_process import (
    Topics,
    WorkerProcess,
    both_clients,
    consume_all,
    ids_of,
    produce_json,
    real_tweets,
    requires_shipped_model,
)

pytestmark = [
    pytest.mark.skipif(
        skip_reason_for_missing_tools() is not None,
        reason=str(skip_reason_for_missing_tools()),
    ),
    requires_shipped_model,
]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[ScriptBroker]:
    port, controller = free_ports(2)
    broker = ScriptBroker(port, controller, tmp_path / "kafka-state")
    started = broker.run("start", timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield broker
    finally:
        broker.run("stop")


@both_clients
def test_the_worker_rides_out_a_broker_outage(
    own_broker: ScriptBroker, tmp_path: Path, kafka_client: str
) -> None:
    topics = Topics(input="tweets", output="tweet-labels", dlq="tweets.dlq")
    admin = KafkaAdminClient(bootstrap_servers=own_broker.bootstrap)
    admin.create_topics(
        {
            name: {"num_partitions": 2, "replication_factor": 1}
            for name in (topics.input, topics.output, topics.dlq)
        }
    )
    admin.wait_for_topics([topics.input, topics.output, topics.dlq], timeout_ms=30_000)
    admin.close()
    worker = WorkerProcess(own_broker.bootstrap, topics, tmp_path, kafka_client=kafka_client)
    try:
        worker.wait_ready()
        before = produce_json(own_broker.bootstrap, topics.input, real_tweets(200), prefix="a")
        consume_all(own_broker.bootstrap, topics.output, cover=before, timeout=60)

        assert own_broker.run("stop").returncode == 0
        time.sleep(8)
        assert worker.process.poll() is None, f"the worker died with the broker:\n{worker.log()}"
        assert worker.get("/healthz")[0] == 200, "the loop must keep stepping while Kafka is down"

        restarted = own_broker.run("start", timeout=180)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        after = produce_json(own_broker.bootstrap, topics.input, real_tweets(200), prefix="b")
        out = consume_all(own_broker.bootstrap, topics.output, cover=after, timeout=120)
        assert set(before) | set(after) <= set(ids_of(out))
        assert worker.terminate() == 0, worker.log()
    finally:
        worker.close()


def _demo(
    tmp_path: Path, kafka_port: int, controller_port: int
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], int]:
    """``tools/demo.sh`` to its end (DEMO_EXIT=1): the run, its environment, its metrics port."""
    (metrics_port,) = free_ports(1)
    env = {
        **os.environ,
        "VENV": str(Path(sys.executable).parent.parent),
        "DEMO_KAFKA_PORT": str(kafka_port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
        "KAFKA_STATE_DIR": str(tmp_path / "demo-state"),
        "DEMO_METRICS_PORT": str(metrics_port),
        "DEMO_RATE": "300",
        "DEMO_EXIT": "1",
    }
    demo = subprocess.run(
        ["bash", str(REPO_ROOT / "tools" / "demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO_ROOT,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    return demo, env, metrics_port


DEMO_TWEETS = len((REPO_ROOT / "examples" / "demo-tweets.csv").read_bytes().splitlines())


@pytest.mark.slow
def test_make_demo_labels_the_examples_and_leaves_nothing_running(tmp_path: Path) -> None:
    kafka_port, controller_port = free_ports(2)
    demo, env, metrics_port = _demo(tmp_path, kafka_port, controller_port)
    assert f"{DEMO_TWEETS} labels: negative" in demo.stderr
    assert "p50" in demo.stderr
    assert f"http://127.0.0.1:{metrics_port}/metrics" in demo.stdout
    assert f"tail --bootstrap-servers 127.0.0.1:{kafka_port}" in demo.stdout
    status = subprocess.run(
        ["bash", str(REPO_ROOT / "tools" / "kafka" / "kafka.sh"), "status"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 3, "the demo left its broker running"


@pytest.mark.slow
def test_make_demo_reuses_a_listening_broker_and_shows_only_its_own_labels(
    own_broker: ScriptBroker, tmp_path: Path
) -> None:
    """A broker from `make kafka-start` (another state folder than the demo's), whose output
    topic holds an earlier run's labels: the demo says it uses that broker, shows only the
    labels of the tweets it replays, and leaves the broker running."""
    admin = KafkaAdminClient(bootstrap_servers=own_broker.bootstrap)
    counts = {"tweets": 3, "tweet-labels": 3, "tweets.dlq": 1}
    admin.create_topics(
        {name: {"num_partitions": n, "replication_factor": 1} for name, n in counts.items()}
    )
    admin.wait_for_topics(list(counts), timeout_ms=30_000)
    admin.close()
    earlier = {
        "text": "a label of an earlier run",
        "label": "positive",
        "probabilities": {"negative": 0.1, "positive": 0.9},
        "source": {"topic": "tweets", "partition": 0, "offset": 0},
        "event_time": "2026-01-01T00:00:00+00:00",
        "labeled_at": "2026-01-01T00:00:01+00:00",
    }
    producer = KafkaProducer(bootstrap_servers=own_broker.bootstrap)
    for _ in range(DEMO_TWEETS):
        producer.send("tweet-labels", json.dumps(earlier).encode())
    producer.flush()
    producer.close()

    demo, _, _ = _demo(tmp_path, own_broker.port, own_broker.controller_port)
    assert f"using the Kafka broker already listening on {own_broker.bootstrap}" in demo.stdout
    assert "starting Kafka" not in demo.stdout
    assert "earlier run" not in demo.stdout
    assert f"{DEMO_TWEETS} labels: negative" in demo.stderr
    (span,) = re.findall(r"tweets/s over ([0-9.]+) s", demo.stderr)
    assert float(span) < 120, demo.stderr
    assert f"--bootstrap-servers {own_broker.bootstrap}" in demo.stdout
    assert own_broker.run("status").returncode == 0, "the demo stopped a broker it did not start"
