"""Per-tweet cost of each stage of the worker's hot path, measured one stage at a time.

Each stage runs the worker's own code over the same tweets (best of ``repeats`` runs):

* ``decode``: :func:`sentistream.worker.core.messages.decode` of the JSON value;
* ``tokenize``: cleaning, tokenizing and id lookup one tweet a call (``Classifier.encode``);
* ``tokenize, encode_batch``: the same for each micro-batch in one call
  (:meth:`SentimentModel.encode_batch`, Rust, GIL released); ``python -m
  sentistream.bench.tokenize`` times it beside cleaning v2 in one run;
* ``infer``: ONNX Runtime over micro-batches (``Classifier.predict_ids``, length buckets as
  the worker runs them) and the conversion of the probabilities to Python lists;
* ``classify``: the whole classify stage (:class:`~sentistream.worker.core.classify.Classify`:
  the three above plus the per-record guards, labels and metrics);
* ``build output``: :func:`~sentistream.worker.core.messages.encode_label`;
* ``publish``: the whole publish stage into a sink that accepts everything at no cost
  (:class:`~sentistream.worker.core.publish.Publisher`: build output, headers, callbacks);
* ``classify + publish``, then the same ``pipelined``: both stages for every micro-batch as
  the worker's loop runs them through its :class:`~sentistream.worker.core.pipeline.InferenceStage`,
  inline (``pipeline_depth`` 1), then with inference on a thread of its own (depth 2) while
  the caller decodes, encodes and publishes the batches around it;
* with a broker, ``send``: the worker's Kafka sink (``KafkaSink.send`` for every label, one
  flush at the end), and ``poll``: the worker's Kafka source reading the same records back
  (both, and the admin client that makes their topic, with the run's connection settings).

Run alone: ``python -m sentistream.bench.stages --model-dir models/sentistream-lstm`` (with
``--bootstrap-servers``, TLS and SASL come from the ``SENTISTREAM_*`` variables).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentistream.connection import KafkaConnection
from sentistream.inference import SentimentModel
from sentistream.worker.app.classifier import OnnxClassifier
from sentistream.worker.app.pipelining import PIPELINE_SWITCH_INTERVAL_S
from sentistream.worker.core.classify import Classify, Labelled
from sentistream.worker.core.messages import HeldRecord, InputRecord, Tweet, decode, encode_label
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.pipeline import InferenceStage
from sentistream.worker.core.ports import Delivered, Outgoing
from sentistream.worker.core.publish import Publisher, Topics
from sentistream.worker.core.runners import InlineRunner, Runner, ThreadRunner

__all__ = ["StageCost", "measure_stages", "payloads"]

MODEL_INFO = {"name": "bench", "version": "1", "sha256": "0" * 64}


@dataclass(frozen=True)
class StageCost:
    stage: str
    tweets: int
    seconds: float
    cpu_seconds: float
    """CPU time of this process (every thread: the client's IO threads, the inference
    thread) over the same run; on a shared machine the steadier of the two figures."""

    @property
    def us_per_tweet(self) -> float:
        return self.seconds / self.tweets * 1e6

    @property
    def cpu_us_per_tweet(self) -> float:
        return self.cpu_seconds / self.tweets * 1e6


def _switching_every(seconds: float, run: Callable[[], None]) -> Callable[[], None]:
    """``run`` with the interpreter's GIL switch interval set to ``seconds``, as the
    pipelined worker sets it (:func:`sentistream.worker.app.pipelining.share_the_gil_finely`)."""

    def switched() -> None:
        before = sys.getswitchinterval()
        sys.setswitchinterval(seconds)
        try:
            run()
        finally:
            sys.setswitchinterval(before)

    return switched


def payloads(texts: Sequence[str], prefix: str) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` per tweet: the key is the id, the value ``{"id": ..., "text": ...}``."""
    return [
        (f"{prefix}{n}".encode(), json.dumps({"id": f"{prefix}{n}", "text": t}).encode())
        for n, t in enumerate(texts)
    ]


def _accepted() -> Future[Delivered | None]:
    """A delivery that is already acknowledged."""
    delivery: Future[Delivered | None] = Future()
    delivery.set_result(None)
    return delivery


class _NullSink:
    def __init__(self) -> None:
        self.accepted = _accepted()

    def send(self, record: Outgoing) -> Future[Delivered | None]:
        return self.accepted

    def partitions(self, topic: str) -> int:
        return 1

    def flush(self, timeout_s: float) -> bool:
        return True

    def close(self, timeout_s: float) -> None:
        return None


def _best(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The lowest wall time and the lowest CPU time of ``repeats`` runs."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        run()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - cpu_started)
    return wall, cpu


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def measure_stages(
    model: SentimentModel,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    bucket_size: int = 32,
    connection: KafkaConnection | None = None,
    repeats: int = 3,
) -> list[StageCost]:
    """The cost of each stage over ``texts`` (see the module's docstring)."""
    now_ms = time.time() * 1000
    records = _records(texts, now_ms)
    classifier = OnnxClassifier(model, bucket_size)
    metrics = WorkerMetrics.create()
    classify = Classify(classifier, metrics)
    batches = _batches(records, batch_size)

    tweets: list[Tweet] = [decode(r.value, "auto", 16_384) for r in records]
    ids = [classifier.encode(t.text) for t in tweets]
    verdicts = [v for batch in batches for v in classify(batch)]
    labelled = [v for v in verdicts if isinstance(v, Labelled)]
    if len(labelled) != len(records):
        raise RuntimeError(f"only {len(labelled)} of {len(records)} tweets were labelled")
    publisher = _null_publisher()

    def run_decode() -> None:
        for record in records:
            decode(record.value, "auto", 16_384)

    def run_tokenize() -> None:
        for tweet in tweets:
            classifier.encode(tweet.text)

    texts_of_batches = [[t.text for t in batch] for batch in _batches(tweets, batch_size)]

    def run_tokenize_batch() -> None:
        for chunk in texts_of_batches:
            model.encode_batch(chunk)

    def run_infer() -> None:
        for batch in _batches(ids, batch_size):
            classifier.predict_ids(batch).tolist()

    def run_classify() -> None:
        for batch in batches:
            classify(batch)

    def run_build() -> None:
        for record, verdict in zip(records, labelled, strict=True):
            encode_label(
                record, verdict.tweet, verdict.label, verdict.probabilities, MODEL_INFO, now_ms
            )

    def run_publish() -> None:
        for start in range(0, len(records), batch_size):
            end = start + batch_size
            publisher.publish(records[start:end], labelled[start:end], now_ms)

    thread = ThreadRunner()
    stages = [
        ("decode", run_decode),
        ("tokenize", run_tokenize),
        ("tokenize, encode_batch", run_tokenize_batch),
        ("infer", run_infer),
        ("classify (decode + tokenize + infer + labels)", run_classify),
        ("build output", run_build),
        ("publish (build output + hand-over, no Kafka)", run_publish),
        *_pipeline_stages(classify, publisher, batches, thread, now_ms),
    ]
    try:
        costs = [StageCost(name, len(records), *_best(run, repeats)) for name, run in stages]
    finally:
        thread.close()
    if connection is not None:
        values = [
            encode_label(r, v.tweet, v.label, v.probabilities, MODEL_INFO, now_ms)
            for r, v in zip(records, labelled, strict=True)
        ]
        costs += _kafka_stages(connection, records, labelled, values, batch_size, now_ms)
    return costs


def _records(texts: Sequence[str], now_ms: float) -> list[InputRecord]:
    """The tweets as the consumer hands them over: JSON values over four partitions."""
    return [
        HeldRecord("tweets", n % 4, n, int(now_ms), key, value)
        for n, (key, value) in enumerate(payloads(texts, "stage-"))
    ]


def _null_publisher() -> Publisher:
    """The worker's publisher over a sink that accepts every record at no cost."""
    return Publisher(
        _NullSink(),
        Topics("labels", "dlq"),
        model_info=MODEL_INFO,
        max_request_bytes=1_048_576,
        on_labeled=lambda *_: None,
        on_dead_lettered=lambda *_: None,
    )


def _pipeline_stages(
    classify: Classify,
    publisher: Publisher,
    batches: Sequence[Sequence[InputRecord]],
    thread: ThreadRunner,
    now_ms: float,
) -> list[tuple[str, Callable[[], object]]]:
    """Classify and publish together: on one thread, and pipelined at both switch intervals."""
    return [
        (
            "classify + publish, one thread (pipeline depth 1)",
            lambda: _through_stage(classify, publisher, batches, InlineRunner(), 1, now_ms),
        ),
        (
            "classify + publish, pipelined (depth 2), Python's 5 ms GIL switch interval",
            lambda: _through_stage(classify, publisher, batches, thread, 2, now_ms),
        ),
        (
            "classify + publish, pipelined (depth 2), the worker's 0.5 ms switch interval",
            _switching_every(
                PIPELINE_SWITCH_INTERVAL_S,
                lambda: _through_stage(classify, publisher, batches, thread, 2, now_ms),
            ),
        ),
    ]


def _through_stage(
    classify: Classify,
    publisher: Publisher,
    batches: Sequence[Sequence[InputRecord]],
    runner: Runner,
    depth: int,
    now_ms: float,
) -> None:
    """Every batch through the worker's inference stage, as its loop runs it: prepare,
    submit (waiting for the oldest when full), publish what is back, in order."""
    stage = InferenceStage(classify, runner, depth)

    def publish_finished() -> None:
        while (done := stage.take()) is not None:
            publisher.publish(done.batch.records, done.verdicts, now_ms, done.model_info)

    for batch in batches:
        prepared = classify.prepare(batch)
        while stage.full:
            stage.wait(None)
            publish_finished()
        stage.submit(prepared, MODEL_INFO)
        publish_finished()
    while len(stage):
        stage.wait(None)
        publish_finished()


def _kafka_stages(
    connection: KafkaConnection,
    records: Sequence[InputRecord],
    labelled: Sequence[Labelled],
    values: Sequence[bytes],
    batch_size: int,
    now_ms: float,
) -> list[StageCost]:
    """``send`` through the worker's sink, the same labels through its publisher into that
    sink, then ``poll`` them all with its source."""
    from kafka import KafkaAdminClient

    from sentistream.worker.backends.kafka_python.sink import KafkaSink
    from sentistream.worker.backends.kafka_python.source import KafkaSource
    from sentistream.worker.settings import WorkerSettings

    topic = f"bench-stages-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(**connection.client_config())
    try:
        admin.create_topics({topic: {"num_partitions": 4, "replication_factor": 1}})
        admin.wait_for_topics([topic], timeout_ms=30_000)
    finally:
        admin.close()
    settings = WorkerSettings(
        **dict(connection),
        input_topic=topic,
        group_id=f"{topic}-group",
        max_batch_size=batch_size,
    )
    sink = KafkaSink(settings)
    sink.send(Outgoing(topic, b"warm-up", b"{}", (), 0))
    sink.flush(30)
    started, cpu_started = time.perf_counter(), time.process_time()
    for record, value in zip(records, values, strict=True):
        sink.send(Outgoing(topic, record.key, value, (), record.partition))
    sink.flush(60)
    sent, sent_cpu = time.perf_counter() - started, time.process_time() - cpu_started

    metrics = WorkerMetrics.create()

    def on_labeled(label: str, *_: object) -> None:  # what the worker does for each label
        metrics.labeled.labels(label=label).inc()
        metrics.event_to_label_seconds.observe(0.001)

    publisher = Publisher(
        sink,
        Topics(topic, f"{topic}-dlq"),
        model_info=MODEL_INFO,
        max_request_bytes=1_048_576,
        on_labeled=on_labeled,
        on_dead_lettered=lambda *_: None,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(records), batch_size):
        publisher.publish(
            records[start : start + batch_size], labelled[start : start + batch_size], now_ms
        )
    sink.flush(60)
    published = time.perf_counter() - started, time.process_time() - cpu_started
    sink.close(5)

    source = KafkaSource(settings)
    source.subscribe()
    wanted, got, polling, polling_cpu = 2 * len(records) + 1, 0, 0.0, 0.0
    deadline = time.monotonic() + 120
    while got < wanted and time.monotonic() < deadline:
        started, cpu_started = time.perf_counter(), time.process_time()
        polled = source.poll(0.1, batch_size)
        count = sum(len(batch) for batch in polled.values())
        if got:  # the clock starts once the group is joined and the first fetch is in
            polling += time.perf_counter() - started
            polling_cpu += time.process_time() - cpu_started
        got += count
    source.close()
    if got < wanted:
        raise RuntimeError(f"read back only {got} of {wanted} records from {topic}")
    return [
        StageCost("send (KafkaSink.send + flush)", len(records), sent, sent_cpu),
        StageCost(
            "publish + send (Publisher → KafkaSink + flush, acknowledgements counted)",
            len(records),
            *published,
        ),
        StageCost("poll (KafkaSource.poll)", wanted - 1, polling, polling_cpu),
    ]


def render(costs: Sequence[StageCost]) -> str:
    lines = ["| stage | µs per tweet, wall | µs per tweet, CPU |", "|---|---:|---:|"]
    lines += [f"| {c.stage} | {c.us_per_tweet:,.1f} | {c.cpu_us_per_tweet:,.1f} |" for c in costs]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from sentistream.bench.raw import sample
    from sentistream.dataset import load_labelled

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models/sentistream-lstm"))
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/sentiment140-100k/sentiment140-100k.csv"),
    )
    parser.add_argument("--tweets", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--bootstrap-servers",
        default=None,
        help="also send and poll through this cluster (TLS, SASL: the SENTISTREAM_* variables)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    model = SentimentModel.load(args.model_dir, threads=1)
    texts = sample(load_labelled(args.data).texts, args.tweets)
    connection = (
        None
        if args.bootstrap_servers is None
        else KafkaConnection(bootstrap_servers=args.bootstrap_servers)
    )
    costs = measure_stages(model, texts, connection=connection, repeats=args.repeats)
    if args.json:
        print(
            json.dumps(
                {c.stage: {"wall_us": c.us_per_tweet, "cpu_us": c.cpu_us_per_tweet} for c in costs},
                indent=2,
            )
        )
    else:
        print(render(costs))


if __name__ == "__main__":
    main()
