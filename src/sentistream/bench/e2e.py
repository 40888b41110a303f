"""End-to-end measurements through a real Kafka broker and a real ``sentistream worker``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from sentistream.bench.raw import sample
from sentistream.connection import KafkaConnection
from sentistream.replay import Pacer
from sentistream.tail import quantile

__all__ = ["EndToEnd", "local_broker", "run_end_to_end"]

REPO_ROOT = Path(__file__).resolve().parents[3]
KAFKA_SH = REPO_ROOT / "tools" / "kafka" / "kafka.sh"


@dataclass(frozen=True)
class EndToEnd:
    tweets: int
    throughput_per_s: float
    offered_rate_per_s: float
    latency_tweets: int
    latency_ms: dict[str, float]
    start_to_ready_s: float
    peak_rss_mb: float
    worker_settings: dict[str, str]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def local_broker(log: Callable[[str], None]) -> Iterator[KafkaConnection]:
    """A throw-away broker from tools/kafka/kafka.sh on free ports."""
    port, controller = _free_ports(2)
    with tempfile.TemporaryDirectory(prefix="sentistream-bench-") as state:
        env = {
            **os.environ,
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller),
            "KAFKA_STATE_DIR": state,
        }
        log(f"starting a Kafka broker on 127.0.0.1:{port}")
        subprocess.run(
            ["bash", str(KAFKA_SH), "start"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        try:
            yield KafkaConnection(
                bootstrap_servers=f"127.0.0.1:{port}", security_protocol="PLAINTEXT"
            )
        finally:
            subprocess.run(
                ["bash", str(KAFKA_SH), "stop"], env=env, check=False, stdout=subprocess.DEVNULL
            )


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _payloads(texts: Sequence[str], prefix: str) -> list[tuple[bytes, bytes]]:
    return [
        (f"{prefix}{n}".encode(), json.dumps({"id": f"{prefix}{n}", "text": t}).encode())
        for n, t in enumerate(texts)
    ]


def run_end_to_end(
    connection: KafkaConnection,
    model_dir: Path,
    texts: Sequence[str],
    *,
    latency_seconds: float = 10.0,
    rate_fraction: float = 0.5,
    worker_settings: dict[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> EndToEnd:
    """Backlog throughput and paced latency of a real worker; ``worker_settings`` (e.g.
    ``processing_guarantee=exactly-once``) are passed to it, and its labels are read with
    ``read_committed`` when it runs exactly-once."""
    client = connection.client_config()
    settings = dict(worker_settings or {})
    exactly_once = settings.get("processing_guarantee") == "exactly-once"
    isolation = "read_committed" if exactly_once else "read_uncommitted"
    run = uuid.uuid4().hex[:8]
    topics = _create_topics(client, run)

    producer = KafkaProducer(**client, acks="all", linger_ms=5, batch_size=256 * 1024)
    log(f"pre-filling {topics['input']} with {len(texts)} tweets")
    for key, value in _payloads(texts, "fill-"):
        producer.send(topics["input"], key=key, value=value)
    producer.flush()

    consumer = KafkaConsumer(
        topics["output"],
        **client,
        isolation_level=isolation,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    consumer.poll(timeout_ms=100)

    port = _free_ports(1)[0]
    env = {
        **os.environ,
        **connection.environment(),
        "SENTISTREAM_INPUT_TOPIC": topics["input"],
        "SENTISTREAM_OUTPUT_TOPIC": topics["output"],
        "SENTISTREAM_DLQ_TOPIC": topics["dlq"],
        "SENTISTREAM_GROUP_ID": f"bench-{run}",
        "SENTISTREAM_MODEL_DIR": str(model_dir),
        "SENTISTREAM_METRICS_HOST": "127.0.0.1",
        "SENTISTREAM_METRICS_PORT": str(port),
        "SENTISTREAM_LOG_LEVEL": "WARNING",
        **{f"SENTISTREAM_{k.upper()}": v for k, v in settings.items()},
    }
    started = time.monotonic()
    worker = subprocess.Popen([sys.executable, "-m", "sentistream.cli", "worker"], env=env)
    try:
        while True:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}")
            with contextlib.suppress(OSError):
                if _get(port, "/healthz") == 200 and _get(port, "/readyz") == 200:
                    break
            time.sleep(0.02)
        start_to_ready = time.monotonic() - started
        log(f"worker ready in {start_to_ready:.2f} s; draining the backlog")

        timestamps: list[int] = []
        deadline = time.monotonic() + 600
        while len(timestamps) < len(texts) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                timestamps.extend(r.timestamp for r in records)
        if len(timestamps) < len(texts):
            raise RuntimeError(f"only {len(timestamps)} of {len(texts)} labels arrived")
        span = (max(timestamps) - min(timestamps)) / 1000
        throughput = len(texts) / max(span, 1e-3)
        log(f"backlog: {len(texts)} labels in {span:.2f} s = {throughput:.0f} tweets/s")

        rate = throughput * rate_fraction
        count = int(rate * latency_seconds)
        log(f"latency: offering {rate:.0f} tweets/s for {latency_seconds:.0f} s")
        latencies = _measure_latency(
            client,
            consumer,
            topics["input"],
            _payloads(sample(texts, count), "lat-"),
            rate,
        )
        rss = _peak_rss_mb(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        consumer.close()
        producer.close()
    return EndToEnd(
        tweets=len(texts),
        throughput_per_s=throughput,
        offered_rate_per_s=rate,
        latency_tweets=len(latencies),
        latency_ms={f"p{int(q * 100)}": quantile(latencies, q) * 1000 for q in (0.5, 0.95, 0.99)},
        start_to_ready_s=start_to_ready,
        peak_rss_mb=rss,
        worker_settings=settings,
    )


def _create_topics(client: dict[str, Any], run: str) -> dict[str, str]:
    topics = {"input": f"bench-in-{run}", "output": f"bench-out-{run}", "dlq": f"bench-dlq-{run}"}
    admin = KafkaAdminClient(**client)
    admin.create_topics(
        {
            topics["input"]: {"num_partitions": 3, "replication_factor": 1},
            topics["output"]: {"num_partitions": 3, "replication_factor": 1},
            topics["dlq"]: {"num_partitions": 1, "replication_factor": 1},
        }
    )
    admin.wait_for_topics(list(topics.values()), timeout_ms=30_000)
    admin.close()
    return topics


def _measure_latency(
    client: dict[str, Any],
    consumer: KafkaConsumer,
    topic: str,
    payloads: list[tuple[bytes, bytes]],
    rate: float,
) -> list[float]:
    """Produce at ``rate`` in a thread; latency = label received here - tweet produced."""
    sent_at: dict[str, float] = {}
    producer = KafkaProducer(**client, acks="all", linger_ms=0)

    def send() -> None:
        pacer = Pacer(rate)
        for key, value in payloads:
            pacer.wait()
            sent_at[key.decode()] = time.time()
            producer.send(topic, key=key, value=value)
        producer.flush()

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    latencies: list[float] = []
    deadline = time.monotonic() + len(payloads) / rate + 60
    while len(latencies) < len(payloads) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=50).values():
            received = time.time()
            for record in records:
                tweet_id = json.loads(record.value)["id"]
                if tweet_id in sent_at:
                    latencies.append(received - sent_at[tweet_id])
    thread.join()
    producer.close()
    return latencies
