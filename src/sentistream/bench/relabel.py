"""A relabel's throughput beside the worker's, in one run on one machine, over the same tweets.

``python -m sentistream.bench.relabel --bootstrap-servers HOST:PORT [--tweets 20000]``: fills a
fresh input topic (3 partitions) with the tweets before any clock starts, then, one after the
other (never two at once: they would share the cores), lets ``sentistream worker`` drain that
backlog into one topic and ``sentistream relabel --from beginning --to end`` read it into
others, each at-least-once and exactly-once. Each figure is labels on the output topic divided
by the span of their ``labeled_at`` (first to last label, as bench's end-to-end backlog is
measured), so start-up is left out of both; the relabel's own wall time (its summary, from
its first poll to its last commit) is given beside it.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import click
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition

from sentistream.dataset import iter_sentiment140

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT.parent / "shared" / "data" / "sentiment140-100k" / "sentiment140-100k.csv"
MODEL = ROOT / "models" / "sentistream-lstm"


def _fill(bootstrap: str, topic: str, count: int) -> None:
    texts = [row.text for _, row in zip(range(count), iter_sentiment140(SAMPLE), strict=False)]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=50, batch_size=1 << 20
    )
    for n, text in enumerate(texts):
        producer.send(
            topic, key=f"t{n}".encode(), value=json.dumps({"id": f"t{n}", "text": text}).encode()
        )
    producer.flush()
    producer.close()


def _labels(bootstrap: str, topic: str) -> list[dict[str, object]]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed"
    )
    tps = [KafkaTopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    out = []
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        for records in consumer.poll(timeout_ms=500).values():
            out += [json.loads(r.value) for r in records]
    consumer.close()
    return out


def _rate(labels: list[dict[str, object]]) -> tuple[int, float, float]:
    """Distinct labels, the span of their labeled_at in seconds, labels per second."""
    stamps = [datetime.fromisoformat(str(v["labeled_at"])).timestamp() for v in labels]
    distinct = len({json.dumps(v["source"], sort_keys=True) for v in labels})
    span = max(stamps) - min(stamps) if stamps else 0.0
    return distinct, span, distinct / span if span else 0.0


def _env(bootstrap: str) -> dict[str, str]:
    return {
        **os.environ,
        "SENTISTREAM_BOOTSTRAP_SERVERS": bootstrap,
        "SENTISTREAM_ORT_THREADS": "1",
    }


def _worker(bootstrap: str, topic: str, output: str, guarantee: str, count: int) -> None:
    """Run the worker until ``count`` labels are on ``output``, then SIGTERM it."""
    env = _env(bootstrap) | {
        "SENTISTREAM_INPUT_TOPIC": topic,
        "SENTISTREAM_OUTPUT_TOPIC": output,
        "SENTISTREAM_DLQ_TOPIC": f"{output}.dlq",
        "SENTISTREAM_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "SENTISTREAM_PROCESSING_GUARANTEE": guarantee,
        "SENTISTREAM_METRICS_PORT": "0",
        "SENTISTREAM_CREATE_TOPICS": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentistream.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(output) or set()
            tps = [KafkaTopicPartition(output, p) for p in parts]
            if tps and sum(consumer.end_offsets(tps).values()) >= count:
                break
            time.sleep(0.5)
    finally:
        consumer.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def _relabel(bootstrap: str, topic: str, output: str, guarantee: str) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentistream.cli",
            "relabel",
            "--input-topic",
            topic,
            "--from",
            "beginning",
            "--to",
            "end",
            "--model-dir",
            str(MODEL),
            "--output-topic",
            output,
            "--dlq-topic",
            f"{output}.dlq",
            "--create-topics",
            "--processing-guarantee",
            guarantee,
            "--json",
            "--no-progress",
        ],
        env=_env(bootstrap),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    summary: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return summary


@click.command()
@click.option("--bootstrap-servers", required=True)
@click.option("--tweets", default=20_000, show_default=True)
@click.option(
    "--rounds",
    default=2,
    show_default=True,
    help="Each round runs all four; the order flips every round (the machine's load drifts).",
)
def main(bootstrap_servers: str, tweets: int, rounds: int) -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"bench-relabel-in-{run}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    admin.wait_for_topics([topic], timeout_ms=30_000)
    _fill(bootstrap_servers, topic, tweets)
    click.echo(f"{tweets} tweets on {topic} (3 partitions); one run after the other:")
    runs = [(w, g) for w in ("worker", "relabel") for g in ("at-least-once", "exactly-once")]
    rates: dict[tuple[str, str], list[float]] = {}
    for n in range(rounds):
        for who, guarantee in runs if n % 2 == 0 else runs[::-1]:
            output = f"bench-relabel-{who}-{guarantee}-{run}-{n}"
            if who == "worker":
                _worker(bootstrap_servers, topic, output, guarantee, tweets)
                extra = ""
            else:
                summary = _relabel(bootstrap_servers, topic, output, guarantee)
                extra = (
                    f"; its own wall time {summary['seconds']} s = "
                    f"{summary['records_per_second']} records/s"
                )
            distinct, span, rate = _rate(_labels(bootstrap_servers, output))
            rates.setdefault((who, guarantee), []).append(rate)
            click.echo(
                f"  {who:8} {guarantee:14} {distinct:>7,} labels in {span:6.2f} s = "
                f"{rate:7,.0f} tweets/s{extra}"
            )
    click.echo("medians:")
    for (who, guarantee), found in rates.items():
        click.echo(f"  {who:8} {guarantee:14} {statistics.median(found):7,.0f} tweets/s")
    admin.close()


if __name__ == "__main__":
    main()
