"""Running ``sentistream worker`` as a real process against a real broker, for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from sentistream.worker.settings import KAFKA_CLIENTS

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO_ROOT / "models" / "sentistream-lstm"
SAMPLE_CSV = REPO_ROOT.parent / "shared" / "data" / "sentiment140-100k" / "sentiment140-100k.csv"
DEMO_CSV = REPO_ROOT / "examples" / "demo-tweets.csv"

requires_shipped_model = pytest.mark.skipif(
    not (SHIPPED_MODEL / "manifest.json").is_file(),
    reason=f"no shipped model at {SHIPPED_MODEL} (run `make train` to build one)",
)
INT8_MODEL = REPO_ROOT / "models" / "sentistream-lstm-int8"
requires_int8_model = pytest.mark.skipif(
    not (INT8_MODEL / "manifest.json").is_file(),
    reason=f"no second model folder at {INT8_MODEL} (run `make export`)",
)


def onnx_sha(folder: Path) -> str:
    """The sha256 of a model folder's ONNX file, from its manifest."""
    return str(json.loads((folder / "manifest.json").read_text())["onnx"]["sha256"])


both_clients = pytest.mark.parametrize("kafka_client", KAFKA_CLIENTS)
"""Run the test once with each ``--kafka-client`` (overrides the ``kafka_client`` fixture that
``start_worker`` reads)."""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Topics:
    input: str
    output: str
    dlq: str
    group: str = field(default_factory=lambda: f"group-{uuid.uuid4().hex[:8]}")


class WorkerProcess:
    def __init__(self, bootstrap: str, topics: Topics, log_dir: Path, **settings: str) -> None:
        self.port = _free_port()
        self.log_path = log_dir / f"worker-{self.port}.log"
        env = {
            **os.environ,
            "SENTISTREAM_BOOTSTRAP_SERVERS": bootstrap,
            "SENTISTREAM_INPUT_TOPIC": topics.input,
            "SENTISTREAM_OUTPUT_TOPIC": topics.output,
            "SENTISTREAM_DLQ_TOPIC": topics.dlq,
            "SENTISTREAM_GROUP_ID": topics.group,
            "SENTISTREAM_MODEL_DIR": str(SHIPPED_MODEL),
            "SENTISTREAM_METRICS_HOST": "127.0.0.1",
            "SENTISTREAM_METRICS_PORT": str(self.port),
            "SENTISTREAM_ORT_THREADS": "1",
            **{f"SENTISTREAM_{k.upper()}": v for k, v in settings.items()},
        }
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sentistream.cli", "worker"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode}:\n{self.log()}")
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.log()}")

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        _, body = self.get("/metrics")
        total = 0.0
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in (labels or {}).items()
                ):
                    total += sample.value
        return total

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self._log.close()


def real_tweets(count: int) -> list[str]:
    """Tweets from the Sentiment140 sample when present, else the project's demo tweets."""
    from sentistream.dataset import iter_sentiment140

    source = SAMPLE_CSV if SAMPLE_CSV.is_file() else DEMO_CSV
    texts = [row.text for row in iter_sentiment140(source)]
    step = max(1, len(texts) // count)
    picked = texts[::step][:count]
    while len(picked) < count:
        picked += texts[: count - len(picked)]
    return picked


def produce_json(bootstrap: str, topic: str, texts: Iterable[str], prefix: str = "t") -> list[str]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    ids = []
    for n, text in enumerate(texts):
        tweet_id = f"{prefix}{n}"
        producer.send(
            topic, key=tweet_id.encode(), value=json.dumps({"id": tweet_id, "text": text}).encode()
        )
        ids.append(tweet_id)
    producer.flush()
    producer.close()
    return ids


def _reader(bootstrap: str, topic: str, isolation_level: str) -> KafkaConsumer:
    """A group-less consumer of every partition of ``topic``, from the start."""
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )


def consume_all(
    bootstrap: str,
    topic: str,
    *,
    until: int = 0,
    cover: Iterable[str] = (),
    timeout: float = 60,
    idle: float = 0.0,
    isolation_level: str = "read_uncommitted",
) -> list[Any]:
    """Read ``topic`` from the start until it holds ``until`` records and a label for every id
    in ``cover`` (then ``idle`` seconds more, to catch extras). Fails the test if that has not
    happened within ``timeout``. ``isolation_level="read_committed"`` reads as downstream
    readers of an exactly-once worker must."""
    wanted = set(cover)
    consumer = _reader(bootstrap, topic, isolation_level)
    records: list[Any] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    quiet_until: float | None = None
    try:
        while True:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
                if wanted:
                    seen.update(json.loads(r.value)["id"] for r in batch)
            if len(records) >= until and wanted <= seen:
                if quiet_until is None:
                    quiet_until = time.monotonic() + idle
                if time.monotonic() >= quiet_until:
                    return records
            elif time.monotonic() >= deadline:
                missing = sorted(wanted - seen)
                pytest.fail(
                    f"{topic}: {len(records)} record(s) after {timeout} s, wanted {until}; "
                    f"{len(missing)} id(s) never labelled, e.g. {missing[:5]}",
                    pytrace=False,
                )
    finally:
        consumer.close()


def ids_of(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["id"] for r in records]


def read_all(
    bootstrap: str,
    topic: str,
    *,
    isolation_level: str = "read_uncommitted",
    quiet_s: float = 2.0,
    timeout: float = 120,
) -> list[Any]:
    """Everything ``topic`` holds (as ``isolation_level`` shows it): read from the start until
    the reader has reached the end offsets and nothing new came for ``quiet_s``."""
    consumer = _reader(bootstrap, topic, isolation_level)
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
            if batches:
                last_new = time.monotonic()
            elif time.monotonic() - last_new >= quiet_s and consumer.assignment():
                ends = consumer.end_offsets(list(consumer.assignment()))
                if all(consumer.position(tp) >= end for tp, end in ends.items()):
                    return records
        pytest.fail(f"{topic}: still reading after {timeout} s", pytrace=False)
    finally:
        consumer.close()
