"""Tweets as real producers write them: every codec Kafka producers use, from librdkafka
(kcat) and from Kafka's own Java producer; upstream transactions, some aborted; Twitter API
and Kafka Connect shapes read through the field settings; labels in Kafka Connect's
JSON-with-schema envelope. Each on a real broker, with both clients where the client reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.worker_process import (
    REPO_ROOT,
    Topics,
    WorkerProcess,
    both_clients,
    consume_all,
    ids_of,
    read_all,
)

CODECS = ("gzip", "snappy", "lz4", "zstd")
JAVA_PRODUCER = Path(__file__).parent / "java" / "LineProducer.java"
KAFKA_LIB = REPO_ROOT / ".cache" / "kafka" / "4.1.1" / "lib"

needs_kcat = pytest.mark.skipif(
    shutil.which("kcat") is None, reason="needs kcat: apt-get install kcat"
)
needs_java = pytest.mark.skipif(
    shutil.which("java") is None or not KAFKA_LIB.is_dir(),
    reason="needs java and the broker's jars (tools/kafka/kafka.sh fetch)",
)


def _lines(prefix: str, count: int) -> list[tuple[str, str]]:
    return [
        (f"{prefix}{n}", json.dumps({"id": f"{prefix}{n}", "text": f"tweet number {n} is great"}))
        for n in range(count)
    ]


def kcat_produce(bootstrap: str, topic: str, lines: list[tuple[str, str]], codec: str) -> None:
    payload = "".join(f"{key}\t{value}\n" for key, value in lines)
    subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", topic, "-z", codec, "-K", "\t", "-X", "linger.ms=20"],
        input=payload.encode(),
        check=True,
        timeout=60,
    )


def java_produce(
    bootstrap: str, topic: str, lines: list[tuple[str, str]], codec: str, txn: str | None = None
) -> None:
    payload = "".join(f"{key}\t{value}\n" for key, value in lines)
    command = ["java", "-cp", f"{KAFKA_LIB}/*", str(JAVA_PRODUCER), bootstrap, topic, codec]
    subprocess.run(
        [*command, *([txn] if txn else [])],
        input=payload.encode(),
        check=True,
        timeout=120,
        capture_output=True,
        env={**os.environ, "JAVA_TOOL_OPTIONS": "-Xmx128m"},
    )


@needs_kcat
@needs_java
@both_clients
def test_every_codec_from_librdkafka_and_the_java_producer_is_labelled(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    expected: list[str] = []
    for codec in CODECS:
        librdkafka = _lines(f"kcat-{codec}-", 20)
        kcat_produce(kafka_bootstrap, topics.input, librdkafka, codec)
        java = _lines(f"java-{codec}-", 20)
        java_produce(kafka_bootstrap, topics.input, java, codec)
        expected += [key for key, _ in librdkafka + java]
    worker = start_worker(max_batch_size="16")
    worker.wait_ready()
    labels = consume_all(kafka_bootstrap, topics.output, cover=expected, timeout=90)
    assert sorted(set(ids_of(labels))) == sorted(expected)
    assert read_all(kafka_bootstrap, topics.dlq, quiet_s=1.0) == []
    assert worker.terminate() == 0, worker.log()


@needs_java
@both_clients
def test_tweets_of_an_aborted_upstream_transaction_are_never_labelled(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    committed = _lines("kept-", 15)
    aborted = _lines("aborted-", 15)
    after = _lines("after-", 15)
    java_produce(kafka_bootstrap, topics.input, committed, "lz4", txn="commit")
    java_produce(kafka_bootstrap, topics.input, aborted, "lz4", txn="abort")
    java_produce(kafka_bootstrap, topics.input, after, "none", txn="commit")
    worker = start_worker()  # the default isolation level: read_committed
    worker.wait_ready()
    wanted = [key for key, _ in committed + after]
    labels = consume_all(kafka_bootstrap, topics.output, cover=wanted, timeout=60, idle=2.0)
    assert sorted(ids_of(labels)) == sorted(wanted)
    assert worker.terminate() == 0, worker.log()


@needs_java
def test_read_uncommitted_labels_what_an_upstream_transaction_aborted(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    aborted = _lines("aborted-", 10)
    java_produce(kafka_bootstrap, topics.input, aborted, "none", txn="abort")
    worker = start_worker(isolation_level="read_uncommitted")
    worker.wait_ready()
    labels = consume_all(
        kafka_bootstrap, topics.output, cover=[key for key, _ in aborted], timeout=60
    )
    assert len(labels) == len(aborted)
    assert worker.terminate() == 0, worker.log()


SHAPES = [
    # (key, value, expected id, expected text)
    (
        "v2",
        {
            "data": {
                "id": "1460323737035677698",
                "text": "I love this",
                "author_id": "42",
                "lang": "en",
            }
        },
        "1460323737035677698",
        "I love this",
    ),
    (
        "v11-long",
        {
            "id": 1460323737035677699,
            "id_str": "1460323737035677699",
            "text": "truncated\u2026",
            "truncated": True,
            "extended_tweet": {"full_text": "this is awful, truly awful"},
            "lang": "en",
        },
        "1460323737035677699",
        "this is awful, truly awful",
    ),
    (
        "connect",
        {"schema": {"type": "struct", "fields": []}, "payload": {"id": "c1", "text": "fine day"}},
        "c1",
        "fine day",
    ),
    (
        "plain",
        {"id": "p1", "text": "our own format still works"},
        "p1",
        "our own format still works",
    ),
]
#: All four shapes at once: the first path present wins.
TEXT_FIELDS = "data.text,extended_tweet.full_text,full_text,text"
ID_FIELDS = "data.id,id_str,id"


@both_clients
def test_twitter_api_and_connect_shapes_are_read_through_the_field_settings(
    kafka_bootstrap: str, topics: Topics, start_worker: Callable[..., WorkerProcess]
) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for key, value, _, _ in SHAPES:
        producer.send(topics.input, key=key.encode(), value=json.dumps(value).encode())
    producer.send(topics.input, key=b"bad", value=json.dumps({"data": {"text": 7}}).encode())
    producer.flush()
    producer.close()
    worker = start_worker(
        text_field=TEXT_FIELDS,
        id_field=ID_FIELDS,
        keep_fields="data.lang,lang",
        output_text="false",
    )
    worker.wait_ready()
    labels = consume_all(kafka_bootstrap, topics.output, until=len(SHAPES), timeout=60, idle=1.0)
    by_key = {r.key.decode(): json.loads(r.value) for r in labels}
    for key, _, tweet_id, _ in SHAPES:
        assert by_key[key]["id"] == tweet_id
        assert "text" not in by_key[key]
    assert by_key["v2"]["kept"] == {"data.lang": "en"}
    assert by_key["v11-long"]["kept"] == {"lang": "en"}
    dead = read_all(kafka_bootstrap, topics.dlq)
    assert [r.key for r in dead] == [b"bad"]
    headers = dict(dead[0].headers)
    assert headers["sentistream.errors.reason"] == b"missing_text"
    assert b"`data.text` is a int" in headers["__connect.errors.exception.message"]
    assert worker.terminate() == 0, worker.log()


@both_clients
@pytest.mark.parametrize("compression", ["zstd", "snappy"])
def test_connect_json_labels_compressed_on_the_way_out(
    kafka_bootstrap: str,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
    compression: str,
) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for n in range(5):
        producer.send(
            topics.input, key=b"k%d" % n, value=json.dumps({"id": n, "text": "nice"}).encode()
        )
    producer.flush()
    producer.close()
    worker = start_worker(output_format="connect-json", output_compression=compression)
    worker.wait_ready()
    labels = consume_all(kafka_bootstrap, topics.output, until=5, timeout=60)
    values = [json.loads(r.value) for r in labels]
    assert {v["schema"]["name"] for v in values} == {"sentistream.Label"}
    assert sorted(v["payload"]["id"] for v in values) == ["0", "1", "2", "3", "4"]
    assert all(v["payload"]["text"] == "nice" for v in values)
    assert worker.terminate() == 0, worker.log()
