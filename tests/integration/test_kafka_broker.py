"""The integration fixtures give a real broker that kafka-python can produce to, consume from
and commit offsets on, and tools/kafka/kafka.sh behaves as documented."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

# Fixture types (conftest modules are not imported from tests).
TopicFactory = Callable[..., str]
KafkaSh = Callable[..., subprocess.CompletedProcess[str]]

MESSAGES = 100
PARTITIONS = 3


def _broker_pids(config_file: Path) -> list[int]:
    """Pids of JVMs running kafka.Kafka with this config file."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process exited while we looked
            continue
        if b"kafka.Kafka" in argv and os.fsencode(config_file) in argv:
            pids.append(int(proc.name))
    return pids


def test_produce_consume_commit_round_trip(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = topic_factory(partitions=PARTITIONS)

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    try:
        pairs = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(MESSAGES)]
        futures = [producer.send(topic, key=key, value=value) for key, value in pairs]
        producer.flush(timeout=30)
        # (partition, offset) -> (key, value), as acknowledged by the broker.
        sent = {}
        for pair, future in zip(pairs, futures, strict=True):
            record = future.get(timeout=30)
            sent[(record.partition, record.offset)] = pair
    finally:
        producer.close(timeout=10)
    assert len(sent) == MESSAGES
    per_partition = Counter(partition for partition, _ in sent)
    assert set(per_partition) == set(range(PARTITIONS)), "100 keys should hash to every partition"

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic}-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        consumer.subscribe([topic])
        received: list[tuple[int, int, bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 60
        while len(received) < MESSAGES and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                assert tp.topic == topic
                received.extend((r.partition, r.offset, r.key, r.value) for r in records)
        # A short extra poll: nothing more (no duplicates) may arrive.
        for records in consumer.poll(timeout_ms=500).values():
            received.extend((r.partition, r.offset, r.key, r.value) for r in records)

        got = Counter((p, o) for p, o, _, _ in received)
        assert not [po for po, n in got.items() if n > 1], "duplicate records consumed"
        assert {(p, o): (k, v) for p, o, k, v in received} == sent

        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        assert all(consumer.committed(tp) is None for tp in partitions)
        consumer.commit()
        for tp in partitions:
            assert consumer.committed(tp) == per_partition[tp.partition]
    finally:
        consumer.close()


def test_status_exits_3_when_no_broker_listens(
    tmp_path: Path, kafka_sh: KafkaSh, free_port_pair: tuple[int, int]
) -> None:
    port, controller_port = free_port_pair
    result = kafka_sh(
        "status",
        timeout=30,
        KAFKA_PORT=str(port),
        KAFKA_CONTROLLER_PORT=str(controller_port),
        KAFKA_STATE_DIR=str(tmp_path / "state"),
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not running" in result.stdout
    assert not (tmp_path / "state").exists(), "status must not create the state dir"


def test_second_start_is_a_no_op(kafka_script_broker: Any) -> None:
    if kafka_script_broker is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS is set: the broker is not started by kafka.sh")
    broker = kafka_script_broker
    config_file = broker.state_dir / "server.properties"
    pid_file = broker.state_dir / "kafka.pid"
    pid_before = pid_file.read_text().strip()
    assert _broker_pids(config_file) == [int(pid_before)]

    again = broker.run("start", timeout=60)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "already running" in again.stdout
    assert again.stdout.strip().splitlines()[-1] == broker.bootstrap
    assert pid_file.read_text().strip() == pid_before
    assert _broker_pids(config_file) == [int(pid_before)]

    status = broker.run("status", timeout=30)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"pid {pid_before}" in status.stdout
