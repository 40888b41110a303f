"""Reliability on a real broker: hostile records, a stalled output topic, start-up checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition

from sentistream.worker.backends.kafka_python.source import KafkaSource
from sentistream.worker.core.ports import TopicPartition
from sentistream.worker.settings import WorkerSettings
from tests.integration.conftest import TopicFactory
from tests.integration.worker_process import (
    REPO_ROOT,
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


NULL = b"<null>"


def _null_marker(data: bytes | None) -> bytes | None:
    """Serializes :data:`NULL` to a null key or value: kafka-python's ``send`` refuses a record
    with neither key nor value before serializing, not after, so this writes one, as other
    clients can."""
    return None if data == NULL else data


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


NEAR_LIMIT = 1_048_200

# What the worker is expected to do with each: (key, value, headers, verdict).
HOSTILE: list[tuple[bytes | None, bytes | None, list[Any], str]] = [
    (
        b"deep",
        ('{"text": "fine words", "id": ' + _nested(1_100) + "}").encode(),
        [],
        "invalid_json",
    ),
    (b"huge-int", ('{"text": "fine", "id": ' + "9" * 5_000 + "}").encode(), [], "invalid_json"),
    (b"nan", b'{"text": "fine", "id": NaN}', [], "invalid_json"),
    (b"inf", b'{"text": "fine", "id": 1e400}', [], "invalid_json"),
    (b"surrogate", b'{"text": "sad \\ud800 day"}', [], "invalid_json"),
    (NULL, NULL, [], "tombstone"),  # neither key nor value
    # Just under the broker's message.max.bytes (1,048,588): fine on the way in, too big for
    # the producer's max_request_size (1 MiB) once the error headers are added.
    (b"near-limit", b"z" * NEAR_LIMIT, [("trace", b"t" * 200)], "oversized"),
    (b"bom", b'\xef\xbb\xbf{"text": "a lovely day", "id": "bom"}', [], "label"),
]


def test_hostile_records_are_each_one_dead_letter_and_the_worker_keeps_going(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        max_request_size=2_000_000,
        key_serializer=_null_marker,
        value_serializer=_null_marker,
    )
    good_ids = []
    for n, (key, value, headers, _) in enumerate(HOSTILE):
        for side in ("before", "after"):
            tweet_id = f"good-{n}-{side}"
            good_ids.append(tweet_id)
            producer.send(
                topics.input,
                partition=0,
                key=tweet_id.encode(),
                value=json.dumps({"id": tweet_id, "text": "what a lovely day"}).encode(),
            )
            if side == "before":
                producer.flush()  # the near-limit record must be a batch of its own
                producer.send(topics.input, partition=0, key=key, value=value, headers=headers)
                producer.flush()
    producer.flush()
    producer.close()

    worker = start_worker()
    worker.wait_ready()
    labelled_hostile = [v for *_, v in HOSTILE if v == "label"]
    dead_expected = [v for *_, v in HOSTILE if v != "label"]
    out = consume_all(
        kafka_bootstrap, topics.output, until=len(good_ids) + len(labelled_hostile), idle=1.0
    )
    dead = consume_all(kafka_bootstrap, topics.dlq, until=len(dead_expected), idle=1.0)

    assert sorted(ids_of(out)) == sorted([*good_ids, "bom"])
    reasons = [dict(r.headers)["sentistream.errors.reason"].decode() for r in dead]
    assert reasons == dead_expected
    near_limit = dead[dead_expected.index("oversized")]
    dead_headers = dict(near_limit.headers)
    assert dead_headers["sentistream.errors.truncated"] == b"true"
    assert dead_headers["sentistream.errors.original_size"] == str(NEAR_LIMIT).encode()
    assert 0 < len(near_limit.value) < NEAR_LIMIT
    assert dead_headers["trace"] == b"t" * 200
    tombstone = dead[dead_expected.index("tombstone")]
    assert (tombstone.key, tombstone.value) == (None, b"")
    assert worker.process.poll() is None, worker.log()
    assert "Traceback" not in worker.log()
    assert worker.terminate() == 0, worker.log()


KCAT = shutil.which("kcat")


@pytest.mark.skipif(
    KCAT is None,
    reason="kcat is missing (apt-get install kcat): it writes "
    "the header key kafka-python's producer cannot",
)
@both_clients
def test_a_record_the_client_cannot_read_is_dead_lettered_and_the_worker_reads_on(
    kafka_bootstrap: str,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
    kafka_client: str,
) -> None:
    """A header key that is not UTF-8 (the protocol says string; librdkafka writes any
    bytes): kafka-python raised CorruptRecordError out of every poll at that offset, and
    confluent-kafka a SystemError from ``headers()``, so the worker stopped at every start."""
    assert KCAT is not None

    def kcat(value: bytes, *header: bytes) -> None:
        args = [KCAT.encode(), b"-P", b"-b", kafka_bootstrap.encode(), b"-t"]
        args += [topics.input.encode(), b"-p", b"0", *header]
        subprocess.run(args, input=value + b"\n", check=True, timeout=30)

    kcat(b'{"id": "before", "text": "what a lovely day"}')
    kcat(b'{"id": "unreadable", "text": "fine words"}', b"-H", b"\xff\xfe=v")
    kcat(b'{"id": "after", "text": "what a lovely day"}')

    worker = start_worker()
    worker.wait_ready()
    out = consume_all(kafka_bootstrap, topics.output, until=2, idle=1.0)
    dead = consume_all(kafka_bootstrap, topics.dlq, until=1, idle=1.0)
    assert sorted(ids_of(out)) == ["after", "before"]
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["sentistream.errors.reason"] == b"unreadable_record"
    assert headers["__connect.errors.offset"] == b"1"
    assert (
        b"UTF-8" in headers["__connect.errors.exception.message"]
        or b"utf-8" in (headers["__connect.errors.exception.message"])
    )
    assert (
        worker.metric("sentistream_records_dead_lettered_total", {"reason": "unreadable_record"})
        == 1
    )
    assert worker.terminate() == 0, worker.log()


def _subscribe_until_assigned(source: KafkaSource, timeout_s: float = 30) -> None:
    source.subscribe()
    deadline = time.monotonic() + timeout_s
    while not source.assignment():
        assert time.monotonic() < deadline, "never assigned"
        source.poll(0.1, 10)


def test_kafka_source_commit_leaves_out_partitions_it_does_not_own(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    owned_topic = topic_factory(partitions=1)
    other_topic = topic_factory(partitions=1)
    group = f"group-{uuid.uuid4().hex[:8]}"
    settings = WorkerSettings(
        bootstrap_servers=kafka_bootstrap, input_topic=owned_topic, group_id=group
    )
    source = KafkaSource(settings)
    try:
        _subscribe_until_assigned(source)
        mine, revoked = TopicPartition(owned_topic, 0), TopicPartition(other_topic, 0)
        assert source.commit({mine: 0, revoked: 7}, 5.0) == {revoked}
    finally:
        source.close()
    reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
    try:
        assert reader.committed(KafkaTopicPartition(owned_topic, 0)) == 0
        assert reader.committed(KafkaTopicPartition(other_topic, 0)) is None
    finally:
        reader.close()


def _owned_partitions(source: KafkaSource) -> list[int]:
    return sorted(tp.partition for tp in source.assignment())


def test_a_source_polling_without_waiting_takes_up_partitions_added_to_its_topic(
    kafka_bootstrap: str, topic_factory: TopicFactory, kafka_admin: KafkaAdminClient
) -> None:
    """The join kafka-python 3.0.12 loses: a rebalance the leader starts because the topic's
    metadata changed, while the loop polls with ``timeout_ms=0`` (as it does whenever a
    micro-batch is due). Without the repair in ``kafka_io._finish_lost_join`` the source keeps
    its one partition for good (reproduced 4 of 4 times); with it, all three within a
    metadata refresh (5 s) and a rejoin."""
    from kafka.admin import NewPartitions

    topic = topic_factory(partitions=1)
    settings = WorkerSettings(
        bootstrap_servers=kafka_bootstrap, input_topic=topic, group_id=f"g-{uuid.uuid4().hex[:8]}"
    )
    source = KafkaSource(settings)
    try:
        _subscribe_until_assigned(source)
        assert _owned_partitions(source) == [0]
        kafka_admin.create_partitions({topic: NewPartitions(total_count=3)})
        deadline = time.monotonic() + 30
        while _owned_partitions(source) != [0, 1, 2] and time.monotonic() < deadline:
            source.poll(0, 10)
        assert _owned_partitions(source) == [0, 1, 2]
    finally:
        source.close(0.0)


def _set_produce_quota(admin: KafkaAdminClient, client_id: str, rate: float | None) -> None:
    """Set (or with None remove) a ``producer_byte_rate`` quota for ``client_id``.

    kafka-python's admin client has no quota call, so this sends the AlterClientQuotas request
    through its connection manager."""
    from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest

    entry = AlterClientQuotasRequest.EntryData
    request = AlterClientQuotasRequest(
        entries=[
            entry(
                entity=[entry.EntityData(entity_type="client-id", entity_name=client_id)],
                ops=[
                    entry.OpData(
                        key="producer_byte_rate", value=float(rate or 0), remove=rate is None
                    )
                ],
            )
        ],
        validate_only=False,
    )
    manager = admin._manager
    response = manager.run(manager.send, request)
    assert [e.error_code for e in response.entries] == [0], response


def _peak_rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB: now and the peak so far."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


MAX_IN_FLIGHT = 256
STALL_TWEETS = 10_000


# Not deterministic: the stall comes from a Kafka produce quota, which the broker enforces by
# measuring the producer's byte rate over its quota sample windows and then delaying its
# responses. How many labels pass before the throttle bites depends on how far the worker got
# within the first windows, which a loaded machine changes; the bounds below allow for it,
# and one run in a full `make test` still fell outside them (cause not found; not seen in
# runs of this test alone). Reruns keep that from failing CI; a real regression fails every
# try.
@pytest.mark.flaky(reruns=2, reruns_delay=1)
def test_a_stalled_output_topic_pauses_the_worker_within_its_in_flight_bound(
    kafka_bootstrap: str,
    kafka_admin: KafkaAdminClient,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(max_batch_size="64", max_in_flight=str(MAX_IN_FLIGHT))
    worker.wait_ready()
    warm = produce_json(kafka_bootstrap, topics.input, real_tweets(500), prefix="warm")
    consume_all(kafka_bootstrap, topics.output, cover=warm, timeout=60)
    _, hwm_before = _peak_rss_kib(worker.process.pid)

    # The output stalls: Kafka throttles the worker's producer to 2 KB/s (about five labels
    # a second). The issue proposed min.insync.replicas=2 on this one-broker cluster, but
    # Kafka 4.1.1 acknowledges acks=all writes to such a topic anyway (checked), so a produce
    # quota it is. The consumer shares the client id; quotas on produce bytes leave it alone.
    client_id = f"sentistream-worker-{topics.group}"
    _set_produce_quota(kafka_admin, client_id, 2_000)
    try:
        stalled = produce_json(
            kafka_bootstrap, topics.input, real_tweets(STALL_TWEETS), prefix="stall"
        )
        peak_in_flight, paused_seen = 0.0, False
        until = time.monotonic() + 15
        while time.monotonic() < until:
            assert worker.process.poll() is None, worker.log()
            peak_in_flight = max(peak_in_flight, worker.metric("sentistream_in_flight_records"))
            paused_seen |= worker.metric("sentistream_paused") == 1
            assert worker.get("/healthz")[0] == 200, "the loop must keep stepping while paused"
            time.sleep(0.1)
        consumed = worker.metric("sentistream_records_consumed_total")
        acknowledged = worker.metric("sentistream_records_labeled_total") + worker.metric(
            "sentistream_records_dead_lettered_total"
        )
        rss_stalled, hwm_stalled = _peak_rss_kib(worker.process.pid)
    finally:
        _set_produce_quota(kafka_admin, client_id, None)

    out = consume_all(kafka_bootstrap, topics.output, cover=[*warm, *stalled], timeout=180)
    assert set(stalled) <= set(ids_of(out))
    _, hwm_after = _peak_rss_kib(worker.process.pid)
    print(  # the figures the issue asks for; run with -s to see them
        f"\nstalled output, --max-in-flight {MAX_IN_FLIGHT}, {STALL_TWEETS} tweets queued: "
        f"peak in flight {peak_in_flight:.0f}; during the stall {consumed - len(warm):.0f} "
        f"consumed, {acknowledged - len(warm):.0f} acknowledged; "
        f"peak RSS {hwm_before / 1024:.1f} MiB before the stall, "
        f"{hwm_stalled / 1024:.1f} MiB during it (RSS then {rss_stalled / 1024:.1f} MiB), "
        f"{hwm_after / 1024:.1f} MiB after recovery"
    )
    assert paused_seen, "the worker never paused"
    assert 0 < peak_in_flight <= MAX_IN_FLIGHT
    # It consumed only what Kafka acknowledged plus the bound, not the 10,000 queued.
    assert consumed - acknowledged <= MAX_IN_FLIGHT, "it kept consuming past the bound"
    assert consumed < len(warm) + STALL_TWEETS / 2
    assert worker.terminate() == 0, worker.log()


SHUTDOWN_TIMEOUT_S = 4.0


@both_clients
def test_a_stop_while_kafka_does_not_acknowledge_ends_within_the_shutdown_timeout(
    kafka_bootstrap: str,
    kafka_admin: KafkaAdminClient,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """SIGTERM with labels produced and not acknowledged (the output throttled to 1 KB/s):
    the worker waits for them no longer than --shutdown-timeout-s in all (drain, producer,
    consumer), commits nothing past them, exits 1 and says how many it leaves to a restart."""
    worker = start_worker(
        max_batch_size="64", shutdown_timeout_s=str(SHUTDOWN_TIMEOUT_S), max_in_flight="512"
    )
    worker.wait_ready()
    client_id = f"sentistream-worker-{topics.group}"
    _set_produce_quota(kafka_admin, client_id, 1_000)
    try:
        produce_json(kafka_bootstrap, topics.input, real_tweets(3000), prefix="stall")
        deadline = time.monotonic() + 60
        while worker.metric("sentistream_in_flight_records") < 64:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
        asked = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(timeout=30)
        took = time.monotonic() - asked
    finally:
        _set_produce_quota(kafka_admin, client_id, None)
    assert code == 1, worker.log()
    assert "not delivered or not committed" in worker.log(), worker.log()
    # The budget, plus the interpreter's exit (threads joined, ONNX Runtime released): 3.4-4.6 s
    # in 50 runs here; the margin is for a loaded CI machine.
    print(f"\nstop with unacknowledged labels: exit {code} after {took:.2f} s")
    assert took < SHUTDOWN_TIMEOUT_S + 2.5, (took, worker.log())


def test_a_missing_output_topic_is_refused_at_start_with_the_fix(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topics = Topics(
        input=topic_factory(partitions=1),
        output=f"missing-{uuid.uuid4().hex[:8]}",
        dlq=topic_factory(partitions=1),
    )
    worker = WorkerProcess(kafka_bootstrap, topics, tmp_path)
    try:
        started = time.monotonic()
        assert worker.process.wait(timeout=30) == 2
        assert time.monotonic() - started < 30
        log = worker.log()
        assert f"output topic '{topics.output}' does not exist" in log
        assert "sentistream create-topics" in log
        assert "Traceback" not in log
    finally:
        worker.close()


def test_a_missing_input_topic_is_refused_unless_create_topics_is_given(
    kafka_bootstrap: str,
    kafka_admin: KafkaAdminClient,
    topic_factory: TopicFactory,
    tmp_path: Path,
) -> None:
    topics = Topics(
        input=f"missing-in-{uuid.uuid4().hex[:8]}",
        output=topic_factory(partitions=1),
        dlq=topic_factory(partitions=1),
    )
    refused = WorkerProcess(kafka_bootstrap, topics, tmp_path)
    try:
        assert refused.process.wait(timeout=30) == 2
        assert f"input topic '{topics.input}' does not exist" in refused.log()
        assert topics.input not in kafka_admin.list_topics()  # not auto-created either
    finally:
        refused.close()

    creating = WorkerProcess(kafka_bootstrap, topics, tmp_path, create_topics="true")
    try:
        creating.wait_ready()
        assert creating.metric("sentistream_assigned_partitions") == 3
        ids = produce_json(kafka_bootstrap, topics.input, ["what a day"] * 5)
        out = consume_all(kafka_bootstrap, topics.output, cover=ids, timeout=60)
        assert set(ids) <= set(ids_of(out))
        assert creating.terminate() == 0, creating.log()
    finally:
        creating.close()
        kafka_admin.delete_topics([topics.input])


def get_url(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker_command(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "sentistream.cli", "worker"],
        env={
            **os.environ,
            "SENTISTREAM_MODEL_DIR": str(SHIPPED_MODEL),
            "SENTISTREAM_METRICS_HOST": "127.0.0.1",
            **{f"SENTISTREAM_{k.upper()}": v for k, v in env.items()},
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    return process, log


def test_an_unreachable_kafka_is_said_at_once_and_a_stop_acts_within_a_second(
    tmp_path: Path,
) -> None:
    port, metrics_port = _free_port(), _free_port()
    process, log = _worker_command(
        tmp_path,
        bootstrap_servers=f"127.0.0.1:{port}",
        metrics_port=str(metrics_port),
        health_stall_s="3",
    )
    try:
        expected = f"cannot reach 127.0.0.1:{port} (connection refused); retrying in 0.5 s"
        deadline = time.monotonic() + 10  # model load + 1-2 s
        while expected not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        health = get_url(f"http://127.0.0.1:{metrics_port}/healthz")
        assert health[0] == 200
        assert health[1].startswith("ok: starting: cannot reach")
        time.sleep(3.5)
        health = get_url(f"http://127.0.0.1:{metrics_port}/healthz")
        assert health[0] == 503, health
        assert "cannot reach" in health[1]

        stop_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - stop_at < 1.0
        text = log.read_text()
        assert "Traceback" not in text
        assert " kafka." not in text, "kafka-python's own lines should be quiet"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_metrics_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process, log = _worker_command(tmp_path, metrics_port=str(port))
        assert process.wait(timeout=30) == 2
    text = log.read_text()
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert len(errors) == 1, text
    assert f"cannot serve /metrics on 127.0.0.1:{port}: Address already in use" in errors[0]
