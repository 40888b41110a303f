"""What users would write instead, through a real broker: each peer drains a kcat backlog and
labels every tweet once, with the fields the benchmark and a consumer read.

The output topic is read back with another client (kafka-python, from the start), not with
the benchmark's own reader. The Quix Streams app needs its bench-only virtualenv (``make
quix-venv``, or ``QUIX_PYTHON``); without one its test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from sentistream.bench.e2e import Session
from sentistream.bench.peers.measure import (
    PLAIN_LOOP,
    QUIX_APP,
    Peer,
    peer_command,
    peer_environment,
    run_peer,
)
from sentistream.bench.stages import payloads
from sentistream.inference import SentimentModel
from tests.integration.worker_process import REPO_ROOT, SHIPPED_MODEL

TWEETS = 200
TEXTS = [f"tweet {n}: what a {'great' if n % 2 else 'awful'} day" for n in range(TWEETS)]


def quix_python() -> Path | None:
    given = os.environ.get("QUIX_PYTHON")
    found = Path(given) if given else REPO_ROOT / ".cache" / "quix-venv" / "bin" / "python"
    return found if found.is_file() else None


def read_output(bootstrap: str, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    try:
        out: list[tuple[bytes | None, dict[str, Any]]] = []
        empty = 0
        while empty < 5:
            polled = consumer.poll(timeout_ms=500)
            empty = 0 if polled else empty + 1
            for records in polled.values():
                out += [(r.key, json.loads(r.value)) for r in records]
        return out
    finally:
        consumer.close()


def check_labels(labels: list[tuple[bytes | None, dict[str, Any]]]) -> None:
    """Every tweet labelled once, keyed by its id, with the model's label and fields."""
    model = SentimentModel.load(SHIPPED_MODEL, threads=1)
    expected = {f"peer-{n}": p.label for n, p in enumerate(model.predict(TEXTS))}
    ids = [value["id"] for _, value in labels]
    assert sorted(ids) == sorted(expected)
    for key, value in labels:
        assert key == value["id"].encode()
        assert value["label"] == expected[value["id"]]
        assert value["text"] == TEXTS[int(value["id"].removeprefix("peer-"))]
        assert set(value["probabilities"]) == set(model.labels)
        assert value["model"]["sha256"] == model.sha256
        event = datetime.fromisoformat(value["event_time"])
        assert event <= datetime.fromisoformat(value["labeled_at"])


def measured(bench_session: Session, peer: Peer, python: Path | str) -> None:
    run = run_peer(bench_session, peer, python, SHIPPED_MODEL, TEXTS, log=lambda _: None)
    assert (run.tweets, run.labels_on_topic, run.duplicates) == (TWEETS, TWEETS, 0)
    assert run.throughput_per_s == pytest.approx(TWEETS / max(run.span_s, 1e-3))
    assert run.cpu_s["peer"] > 0
    assert run.peak_rss_mb > 0
    check_labels(read_output(bench_session.broker.bootstrap, run.topics["output"]))


def test_the_plain_kafka_python_loop_labels_every_tweet_once(bench_session: Session):
    measured(bench_session, PLAIN_LOOP, sys.executable)


def python_of(peer: Peer) -> Path | str:
    if peer is PLAIN_LOOP:
        return sys.executable
    python = quix_python()
    if python is None:
        pytest.skip(
            "the Quix Streams app runs from its bench-only virtualenv: make quix-venv "
            "(or QUIX_PYTHON=/path/to/python with quixstreams==3.28.1)"
        )
    return python


@pytest.mark.parametrize("peer", [PLAIN_LOOP, QUIX_APP], ids=lambda peer: peer.key)
def test_a_peer_exits_by_itself_after_its_count(bench_session: Session, peer: Peer):
    python = python_of(peer)
    topics = bench_session.create_topics("peer-count")
    bench_session.fill(topics["input"], payloads(TEXTS, "peer-"))
    command = peer_command(
        peer, python, bench_session.broker.bootstrap, topics, SHIPPED_MODEL, count=TWEETS
    )
    done = subprocess.run(
        command, env=peer_environment(os.environ), capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    library = "kafka-python " if peer is PLAIN_LOOP else "quixstreams 3.28.1 "
    assert done.stdout.decode().startswith(f"ready {library}")
    check_labels(read_output(bench_session.broker.bootstrap, topics["output"]))


def test_the_quix_streams_app_labels_every_tweet_once(bench_session: Session):
    measured(bench_session, QUIX_APP, python_of(QUIX_APP))
