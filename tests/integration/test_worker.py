"""The worker against a real Apache Kafka broker: delivery, crashes, bad input, scaling."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.integration.worker_process import (
    SHIPPED_MODEL,
    Topics,
    WorkerProcess,
    both_clients,
    consume_all,
    ids_of,
    produce_json,
    real_tweets,
    requires_shipped_model,
)

pytestmark = requires_shipped_model


def group_progress(
    bootstrap: str, topic: str, group: str, partitions: int
) -> dict[int, tuple[int, int]]:
    """Per partition of ``topic``: the group's committed offset (0 if none) and the end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = consumer.end_offsets(tps)
        return {tp.partition: (consumer.committed(tp) or 0, ends[tp]) for tp in tps}
    finally:
        consumer.close()


def committed_total(bootstrap: str, topic: str, group: str, partitions: int) -> int:
    """Sum of the group's committed offsets over the topic's partitions."""
    progress = group_progress(bootstrap, topic, group, partitions)
    return sum(committed for committed, _ in progress.values())


@both_clients
def test_every_tweet_gets_exactly_one_label_and_offsets_are_committed(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids = produce_json(kafka_bootstrap, topics.input, real_tweets(500))
    worker = start_worker()
    worker.wait_ready()
    out = consume_all(kafka_bootstrap, topics.output, until=len(ids), idle=1.0)
    assert sorted(ids_of(out)) == sorted(ids)
    results = [json.loads(r.value) for r in out]
    labels = json.loads((SHIPPED_MODEL / "manifest.json").read_text())["labels"]
    assert {r["label"] for r in results} <= set(labels)
    assert all(list(r["probabilities"]) == labels for r in results)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in results)
    assert all(r["source"]["topic"] == topics.input for r in results)
    # The key is kept and each output lands on the input's partition, in input order.
    for record, result in zip(out, results, strict=True):
        assert record.key.decode() == result["id"]
        assert record.partition == result["source"]["partition"]
    by_partition: dict[int, list[int]] = {}
    for result in results:
        by_partition.setdefault(result["source"]["partition"], []).append(
            result["source"]["offset"]
        )
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())

    deadline = time.monotonic() + 15
    while committed_total(kafka_bootstrap, topics.input, topics.group, 3) < len(ids):
        assert time.monotonic() < deadline, "offsets were not committed"
        time.sleep(0.2)
    # Metrics show what happened.
    assert worker.metric("sentistream_records_consumed_total") == len(ids)
    assert worker.metric("sentistream_records_labeled_total") == len(ids)
    labeled_by_label = Counter(r["label"] for r in results)
    for label, count in labeled_by_label.items():
        assert worker.metric("sentistream_records_labeled_total", {"label": label}) == count
    assert worker.metric("sentistream_batch_size_records_sum") == len(ids)
    assert worker.metric("sentistream_inference_seconds_count") >= 1
    assert worker.metric("sentistream_event_to_label_seconds_count") == len(ids)
    assert worker.metric("sentistream_commits_total") >= 1
    assert worker.metric("sentistream_assigned_partitions") == 3
    assert worker.metric("sentistream_model_info") == 1
    assert worker.terminate() == 0


def records_in(bootstrap: str, topic: str, partitions: int = 3) -> int:
    """How many records ``topic`` holds (sum of its end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        consumer.close()


def worker_mid_stream(
    bootstrap: str,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
    tweets: int = 3000,
) -> tuple[list[str], WorkerProcess]:
    """``tweets`` queued and a worker (small batches) that has labelled 300 or more of them."""
    ids = produce_json(bootstrap, topics.input, real_tweets(tweets))
    worker = start_worker(max_batch_size="32")
    worker.wait_ready()
    consume_all(bootstrap, topics.output, until=300, timeout=60)
    return ids, worker


@both_clients
def test_sigkill_mid_stream_then_restart_loses_nothing(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids, first = worker_mid_stream(kafka_bootstrap, topics, start_worker, tweets=20_000)
    first.kill()
    assert first.process.returncode == -9
    # The kill must land mid-stream: some labels out, not all (else the test proves nothing).
    labelled_at_kill = records_in(kafka_bootstrap, topics.output)
    assert 300 <= labelled_at_kill < len(ids), labelled_at_kill
    second = start_worker()
    second.wait_ready()
    out = consume_all(kafka_bootstrap, topics.output, cover=ids, timeout=90)
    assert set(ids) <= set(ids_of(out)), "a tweet was lost across the SIGKILL"
    assert second.terminate() == 0


@both_clients
def test_sigterm_exits_cleanly_and_a_restart_duplicates_nothing(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids, first = worker_mid_stream(kafka_bootstrap, topics, start_worker)
    started = time.monotonic()
    assert first.terminate(timeout=30) == 0, first.log()
    assert time.monotonic() - started < 30
    assert "stopped cleanly" in first.log()
    second = start_worker()
    second.wait_ready()
    out = consume_all(kafka_bootstrap, topics.output, cover=ids, timeout=90, idle=2.0)
    counts = Counter(ids_of(out))
    assert set(counts) == set(ids)
    assert [i for i, n in counts.items() if n > 1] == []
    assert second.terminate() == 0


BAD_INPUTS: list[tuple[str, bytes | None]] = [
    ("decode_error", b"\xff\xfe not utf-8"),
    ("invalid_json", b'{"text": "unclosed'),
    ("missing_text", b'{"id": "x"}'),
    ("missing_text", b'{"text": 42}'),
    ("empty_text", b'{"text": "   "}'),
    ("empty_text", b"   "),
    ("tombstone", None),
    ("oversized", b'{"text": "' + b"a" * 5000 + b'"}'),
]


@both_clients
def test_bad_input_is_dead_lettered_with_headers_and_neighbours_are_labeled(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    good = 0
    for n, (_reason, value) in enumerate(BAD_INPUTS):
        producer.send(
            topics.input,
            key=f"good-{n}".encode(),
            partition=0,
            value=json.dumps({"id": f"good-{n}", "text": "what a lovely day"}).encode(),
        )
        producer.send(
            topics.input,
            key=f"bad-{n}".encode(),
            value=value,
            partition=0,
            headers=[("trace", f"bad-{n}".encode())],
        )
        good += 1
    producer.send(topics.input, key=b"plain", partition=0, value=b"plain text tweet, so sad")
    good += 1
    producer.flush()
    producer.close()

    worker = start_worker(max_record_bytes="4096")
    worker.wait_ready()
    out = consume_all(kafka_bootstrap, topics.output, until=good, idle=1.0)
    dead = consume_all(kafka_bootstrap, topics.dlq, until=len(BAD_INPUTS), idle=1.0)
    assert sorted(r.key.decode() for r in out) == sorted(
        [f"good-{n}" for n in range(len(BAD_INPUTS))] + ["plain"]
    )
    assert len(dead) == len(BAD_INPUTS)
    for record, (reason, value) in zip(dead, BAD_INPUTS, strict=True):
        headers = dict(record.headers)
        assert record.value == value
        assert headers["trace"] == record.key
        assert headers["sentistream.errors.reason"] == reason.encode()
        assert headers["__connect.errors.topic"] == topics.input.encode()
        assert headers["__connect.errors.partition"] == b"0"
        assert int(headers["__connect.errors.offset"]) >= 0
        assert headers["__connect.errors.exception.class.name"] == b"sentistream.InvalidMessage"
        assert headers["__connect.errors.exception.message"]
    for reason, count in Counter(reason for reason, _ in BAD_INPUTS).items():
        assert worker.metric("sentistream_records_dead_lettered_total", {"reason": reason}) == count
    deadline = time.monotonic() + 15
    total = len(BAD_INPUTS) * 2 + 1
    while committed_total(kafka_bootstrap, topics.input, topics.group, 3) < total:
        assert time.monotonic() < deadline, "offsets were not committed past the bad records"
        time.sleep(0.2)
    assert worker.terminate() == 0


@both_clients
def test_two_workers_share_partitions_and_one_stopping_hands_over(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    a = start_worker()
    b = start_worker()
    a.wait_ready()
    b.wait_ready()
    deadline = time.monotonic() + 30
    while a.metric("sentistream_assigned_partitions") + b.metric(
        "sentistream_assigned_partitions"
    ) != 3 or 0 in (
        a.metric("sentistream_assigned_partitions"),
        b.metric("sentistream_assigned_partitions"),
    ):
        assert time.monotonic() < deadline, "the group never split the partitions"
        time.sleep(0.2)
    ids = produce_json(kafka_bootstrap, topics.input, real_tweets(2000))
    consume_all(kafka_bootstrap, topics.output, until=200, timeout=60)
    # The first 200 labels can all come from one worker on a loaded machine; the second must
    # still take its share of the 2,000 (its partitions hold about half of them).
    deadline = time.monotonic() + 30
    while b.metric("sentistream_records_consumed_total") == 0:
        assert time.monotonic() < deadline, "the second worker did no work"
        time.sleep(0.2)
    assert b.terminate() == 0
    deadline = time.monotonic() + 30
    while a.metric("sentistream_assigned_partitions") != 3:
        assert time.monotonic() < deadline, "the survivor never took over all partitions"
        time.sleep(0.2)
    # At least its first assignment and the one that handed it b's partitions.
    assert a.metric("sentistream_rebalances_total") >= 2
    assert a.metric("sentistream_input_partitions") == 3  # read from the cluster's metadata
    out = consume_all(kafka_bootstrap, topics.output, cover=ids, timeout=90)
    assert set(ids) <= set(ids_of(out))
    assert a.metric("sentistream_records_consumed_total") > 0
    assert a.terminate() == 0
