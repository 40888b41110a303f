"""``sentistream relabel`` on a real broker: beside a live worker it leaves the live group's
committed offsets as they were and labels each record of its range once (read_committed);
SIGKILLed mid-run in exactly-once mode and started again with the same arguments, it neither
repeats nor skips a record; its comparison table is the count a reader of both topics makes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from sentistream.relabel.range import RangeSpec, parse_offsets
from sentistream.relabel.run import run_group_id
from tests.integration.conftest import TopicFactory
from tests.integration.test_worker import committed_total, group_progress, records_in
from tests.integration.worker_process import (
    INT8_MODEL,
    REPO_ROOT,
    SHIPPED_MODEL,
    Topics,
    WorkerProcess,
    onnx_sha,
    read_all,
    real_tweets,
    requires_int8_model,
    requires_shipped_model,
)

pytestmark = requires_shipped_model

RELABEL_TIMEOUT_S = 120


def produce(
    bootstrap: str, topic: str, texts: list[str], prefix: str, bad_every: int = 0
) -> tuple[set[str], set[str]]:
    """JSON tweets keyed by id (``prefix`` + n); one in ``bad_every`` invalid JSON instead."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    good, bad = set(), set()
    for n, text in enumerate(texts):
        tweet_id = f"{prefix}{n}"
        if bad_every and n % bad_every == bad_every - 1:
            value = b'{"text": "unclosed'
            bad.add(tweet_id)
        else:
            value = json.dumps({"id": tweet_id, "text": text}).encode()
            good.add(tweet_id)
        producer.send(topic, key=tweet_id.encode(), value=value)
    producer.flush()
    producer.close()
    return good, bad


def relabel_command(bootstrap: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sentistream.cli",
        "relabel",
        "--bootstrap-servers",
        bootstrap,
        "--ort-threads",
        "1",
        "--no-progress",
        "--json",
        *args,
    ]


def relabel(bootstrap: str, *args: str) -> dict[str, Any]:
    """Run relabel to its end; its JSON summary."""
    return run_to_end(relabel_command(bootstrap, *args))


def run_to_end(command: list[str]) -> dict[str, Any]:
    """Run a relabel ``command`` to its end (exit 0); its JSON summary."""
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RELABEL_TIMEOUT_S,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}"
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def wait_until_live_worker_is_done(
    bootstrap: str, topics: Topics, worker: WorkerProcess, timeout: float = 120
) -> None:
    """The live worker committed every record of the input."""
    total = records_in(bootstrap, topics.input)
    deadline = time.monotonic() + timeout
    while committed_total(bootstrap, topics.input, topics.group, 3) < total:
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.3)


class TransactionWatch:
    """Whether a transaction is open on a topic: a partition's last stable offset (what a
    ``read_committed`` reader can reach) is behind its high watermark."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 3) -> None:
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.readers = [
            KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
            for isolation in ("read_committed", "read_uncommitted")
        ]

    def open(self) -> bool:
        stable, high = (reader.end_offsets(self.tps) for reader in self.readers)
        return bool(stable != high)

    def close(self) -> None:
        for reader in self.readers:
            reader.close()


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sources(records: list[Any]) -> Counter[tuple[int, int]]:
    """How often each source record (partition, offset) has a label among ``records``."""
    found: Counter[tuple[int, int]] = Counter()
    for r in records:
        source = json.loads(r.value)["source"]
        found[(source["partition"], source["offset"])] += 1
    return found


def dead_sources(records: list[Any]) -> Counter[tuple[int, int]]:
    """The same for dead letters (their ``__connect.errors.*`` headers)."""
    found: Counter[tuple[int, int]] = Counter()
    for r in records:
        headers = dict(r.headers)
        found[
            (
                int(headers["__connect.errors.partition"]),
                int(headers["__connect.errors.offset"]),
            )
        ] += 1
    return found


def test_a_relabel_by_time_beside_a_live_worker_leaves_its_group_alone_and_labels_once(
    kafka_bootstrap: str,
    topics: Topics,
    topic_factory: TopicFactory,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Three batches an instant apart; the relabel's --from/--to bracket the middle one. The
    live worker runs throughout; its group's committed offsets are compared before and after.
    The relabel (exactly-once, with the live worker's model) agrees with every live label."""
    live = start_worker()
    tweets = real_tweets(1200)
    produce(kafka_bootstrap, topics.input, tweets[:300], "a", bad_every=50)
    time.sleep(0.05)
    start = iso_now()
    good, bad = produce(kafka_bootstrap, topics.input, tweets[300:900], "b", bad_every=50)
    end = iso_now()
    time.sleep(0.05)
    produce(kafka_bootstrap, topics.input, tweets[900:], "c", bad_every=50)
    live.wait_ready()
    wait_until_live_worker_is_done(kafka_bootstrap, topics, live)
    before = group_progress(kafka_bootstrap, topics.input, topics.group, 3)
    output, dlq = topic_factory(3, prefix="relabel"), topic_factory(1, prefix="relabel-dlq")

    summary = relabel(
        kafka_bootstrap,
        *("--input-topic", topics.input, "--from", start, "--to", end),
        *("--model-dir", str(SHIPPED_MODEL), "--output-topic", output, "--dlq-topic", dlq),
        *("--processing-guarantee", "exactly-once", "--compare-with", topics.output),
    )

    assert group_progress(kafka_bootstrap, topics.input, topics.group, 3) == before
    assert summary["group_id"] != topics.group
    assert live.process.poll() is None, live.log()
    labels = read_all(kafka_bootstrap, output, isolation_level="read_committed")
    dead = read_all(kafka_bootstrap, dlq, isolation_level="read_committed")
    assert Counter(json.loads(r.value)["id"] for r in labels) == Counter(good)
    assert Counter(r.key.decode() for r in dead) == Counter(bad)
    assert {json.loads(r.value)["model"]["sha256"] for r in labels} == {onnx_sha(SHIPPED_MODEL)}
    marks = {dict(r.headers).get("sentistream.relabel") for r in labels + dead}
    assert marks == {summary["group_id"].encode()}
    assert (summary["records_read"], summary["labels"], summary["dead_letters"]) == (
        len(good) + len(bad),
        len(good),
        len(bad),
    )
    assert summary["complete"]
    comparison = summary["comparison"]
    assert (comparison["matched"], comparison["differ"]) == (len(good), 0)
    table = comparison["table"]
    assert sum(table[name][name] for name in table) == len(good)


def test_exactly_once_relabel_sigkilled_mid_run_and_started_again_has_no_duplicates_or_gaps(
    kafka_bootstrap: str, topics: Topics, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    produce(kafka_bootstrap, topics.input, real_tweets(4500), "t", bad_every=97)
    offsets = "0:100-1400,1:0-1500,2:50-1450"
    output = topic_factory(3, prefix="relabel")
    args = relabel_command(
        kafka_bootstrap,
        *("--input-topic", topics.input, "--offsets", offsets, "--output-topic", output),
        *("--model-dir", str(SHIPPED_MODEL), "--dlq-topic", topics.dlq),
        *("--processing-guarantee", "exactly-once", "--max-batch-size", "32"),
    )
    ranges = parse_offsets(offsets)
    total = sum(r.size for r in ranges.values())
    group = run_group_id(topics.input, RangeSpec(offsets=ranges), onnx_sha(SHIPPED_MODEL), output)
    log = (tmp_path / "first.log").open("wb")
    first = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    deadline = time.monotonic() + 90
    watch = TransactionWatch(kafka_bootstrap, output)
    try:
        while committed_total(kafka_bootstrap, topics.input, group, 3) < 600 or not watch.open():
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
        first.kill()  # SIGKILL, most likely with a transaction open
    finally:
        watch.close()
    first.wait(10)
    log.close()
    done_at_kill = committed_total(kafka_bootstrap, topics.input, group, 3)
    assert done_at_kill < total

    summary = run_to_end(args)

    assert summary["complete"], summary
    assert summary["group_id"] == group
    assert summary["already_done"] > 0
    labels = read_all(kafka_bootstrap, output, isolation_level="read_committed")
    dead = read_all(kafka_bootstrap, topics.dlq, isolation_level="read_committed")
    seen = sources(labels) + dead_sources(dead)
    expected = {(p, o) for p, r in ranges.items() for o in range(r.start, r.end)}
    assert [key for key, n in seen.items() if n > 1] == []  # no duplicates
    assert set(seen) == expected  # no gaps, nothing outside the range
    print(
        f"relabel killed with {done_at_kill} of {total} committed; the restart did the other "
        f"{summary['records_read']} ({len(read_all(kafka_bootstrap, output)) - len(labels)} "
        "aborted label records visible to read_uncommitted)"
    )


def test_a_killed_runs_transaction_holding_offsets_is_ended_by_the_restart_not_waited_out(
    kafka_bootstrap: str, topics: Topics, topic_factory: TopicFactory
) -> None:
    """The narrow moment of a kill, made on purpose: a producer with the run's transactional
    id adds offsets for the run's group to a transaction and is abandoned (as a relabel
    SIGKILLed between adding its offsets and committing). Kafka holds those offsets back
    ("unstable offset") until the transaction ends; the restart ends it by fencing, at once,
    rather than waiting out its timeout, and starts from the range's start (the abandoned
    offsets were aborted)."""
    produce(kafka_bootstrap, topics.input, real_tweets(300), "t")
    output = topic_factory(3, prefix="relabel")
    offsets = "0:0-60,1:0-60,2:0-60"
    group = run_group_id(
        topics.input, RangeSpec(offsets=parse_offsets(offsets)), onnx_sha(SHIPPED_MODEL), output
    )
    abandoned = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        transactional_id=group,
        transaction_timeout_ms=300_000,  # far beyond the test: only fencing can end it
    )
    abandoned.init_transactions()
    abandoned.begin_transaction()
    stale = {TopicPartition(topics.input, p): OffsetAndMetadata(50, "", -1) for p in range(3)}
    abandoned.send_offsets_to_transaction(stale, group)
    started = time.monotonic()
    try:
        summary = relabel(
            kafka_bootstrap,
            *("--input-topic", topics.input, "--offsets", offsets, "--output-topic", output),
            *("--model-dir", str(SHIPPED_MODEL), "--dlq-topic", topics.dlq),
            *("--processing-guarantee", "exactly-once"),
        )
    finally:
        abandoned.close(timeout=0)
    took = time.monotonic() - started
    assert summary["complete"]
    assert (summary["already_done"], summary["records_read"]) == (0, 180)
    assert took < 40, f"{took:.0f} s: the restart waited for the abandoned transaction"
    seen = sources(read_all(kafka_bootstrap, output, isolation_level="read_committed"))
    assert set(seen) == {(p, o) for p in range(3) for o in range(60)}
    assert max(seen.values()) == 1


def test_at_least_once_relabel_stopped_by_sigterm_continues_with_neither_repeats_nor_gaps(
    kafka_bootstrap: str, topics: Topics, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """SIGTERM drains and commits what was delivered, then exits 1; the same command
    continues from there."""
    produce(kafka_bootstrap, topics.input, real_tweets(3000), "t")
    output = topic_factory(3, prefix="relabel")
    args = relabel_command(
        kafka_bootstrap,
        *("--input-topic", topics.input, "--from", "beginning", "--to", "end"),
        *("--model-dir", str(SHIPPED_MODEL), "--output-topic", output),
        *("--dlq-topic", topics.dlq, "--max-batch-size", "32"),
    )
    group = run_group_id(topics.input, RangeSpec(), onnx_sha(SHIPPED_MODEL), output)
    first = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO_ROOT, text=True
    )
    deadline = time.monotonic() + 90
    while committed_total(kafka_bootstrap, topics.input, group, 3) < 300:
        assert first.poll() is None, "relabel ended before it was stopped"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=30)
    assert first.returncode == 1
    stopped = json.loads(out.splitlines()[-1])
    assert not stopped["complete"]
    assert "run the same command again" in stopped["detail"]
    assert committed_total(kafka_bootstrap, topics.input, group, 3) == stopped["records_read"]

    summary = run_to_end(args)

    assert summary["already_done"] == stopped["records_read"]
    assert summary["records_read"] == 3000 - stopped["records_read"]
    seen = sources(read_all(kafka_bootstrap, output))
    assert [key for key, n in seen.items() if n > 1] == []
    assert sum(seen.values()) == 3000


@requires_int8_model
def test_the_comparison_table_with_the_int8_model_is_the_count_of_both_topics(
    kafka_bootstrap: str,
    topics: Topics,
    topic_factory: TopicFactory,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """The live worker labels with the shipped model; relabel (at-least-once) with the int8
    folder; the test counts (original, new) pairs itself from both topics."""
    produce(kafka_bootstrap, topics.input, real_tweets(2000), "t")
    live = start_worker()
    live.wait_ready()
    wait_until_live_worker_is_done(kafka_bootstrap, topics, live)
    before = group_progress(kafka_bootstrap, topics.input, topics.group, 3)
    output = topic_factory(3, prefix="relabel-int8")

    summary = relabel(
        kafka_bootstrap,
        *("--input-topic", topics.input, "--from", "beginning", "--to", "end"),
        *("--model-dir", str(INT8_MODEL), "--output-topic", output, "--dlq-topic", topics.dlq),
        *("--compare-with", topics.output),
    )

    assert group_progress(kafka_bootstrap, topics.input, topics.group, 3) == before
    original = {
        (v["source"]["partition"], v["source"]["offset"]): v["label"]
        for v in (json.loads(r.value) for r in read_all(kafka_bootstrap, topics.output))
    }
    new = {
        (v["source"]["partition"], v["source"]["offset"]): v["label"]
        for v in (json.loads(r.value) for r in read_all(kafka_bootstrap, output))
        if v["model"]["sha256"] == onnx_sha(INT8_MODEL)
    }
    assert set(new) == set(original)
    pairs = Counter((original[key], new[key]) for key in new)
    table = summary["comparison"]["table"]
    assert {(o, n): c for o, row in table.items() for n, c in row.items() if c} == dict(pairs)
    differ = sum(c for (o, n), c in pairs.items() if o != n)
    assert summary["comparison"]["differ"] == differ
    assert summary["comparison"]["matched"] == len(new) == 2000
    print(f"int8 against the shipped model: {differ} of {len(new)} labels differ: {dict(pairs)}")
