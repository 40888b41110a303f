"""The worker loop driven step by step with in-memory fakes and a fake clock; nothing sleeps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sentistream.worker.core.batcher import BatchPolicy
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.messages import InputFormat
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.ports import (
    DeliveryFailed,
    SinkUnavailable,
    SourceFailed,
    TopicPartition,
)
from sentistream.worker.core.publish import Topics
from sentistream.worker.core.runners import Runner
from tests.unit.fakes import FakeClassifier, FakeClock, FakeRecord, FakeSink, FakeSource

IN = "tweets"
OUT = "tweet-labels"
DLQ = "tweets.dlq"
TP0 = TopicPartition(IN, 0)
TP1 = TopicPartition(IN, 1)
MODEL_INFO = {"name": "fake-lstm", "sha256": "abc123"}
CLOCK_TIME = 1_700_000_000.0
EVENT_MS = int((CLOCK_TIME - 2.0) * 1000)
"""Input records were produced two seconds before the fake clock's start."""


def rec(
    offset: int,
    value: str | bytes | None,
    *,
    partition: int = 0,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes | None]] = (),
    timestamp: int = EVENT_MS,
) -> FakeRecord:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return FakeRecord(IN, partition, offset, timestamp, key, raw, tuple(headers))


@dataclass
class Harness:
    source: FakeSource
    sink: FakeSink
    classifier: FakeClassifier
    clock: FakeClock
    registry: CollectorRegistry
    worker: Worker

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def labels_out(self) -> list[dict[str, Any]]:
        return [json.loads(s.value or b"null") for s in self.sink.to(OUT)]


def make(
    records: Sequence[FakeRecord] = (),
    *,
    batch: int = 4,
    wait_s: float = 0.5,
    poll_timeout_s: float = 0.1,
    commit_interval_s: float = 0.5,
    adaptive: bool = False,
    auto_ack: bool = False,
    classifier: FakeClassifier | None = None,
    input_format: InputFormat = "auto",
    max_record_bytes: int = 1024,
    max_in_flight: int | None = None,
    source: FakeSource | None = None,
    sink: FakeSink | None = None,
    pipeline_depth: int = 1,
    runner: Runner | None = None,
) -> Harness:
    source = source if source is not None else FakeSource(records)
    sink = sink if sink is not None else FakeSink(auto_ack=auto_ack)
    classifier = classifier or FakeClassifier()
    clock = FakeClock(monotonic=1_000.0, time=CLOCK_TIME)
    registry = CollectorRegistry()
    worker = Worker(
        source,
        sink,
        classifier,
        WorkerMetrics.create(registry),
        policy=BatchPolicy(
            max_batch_size=batch,
            max_wait_s=wait_s,
            poll_timeout_s=poll_timeout_s,
            commit_interval_s=commit_interval_s,
            adaptive=adaptive,
        ),
        topics=Topics(output=OUT, dead_letter=DLQ),
        input_format=input_format,
        max_record_bytes=max_record_bytes,
        max_in_flight=max_in_flight,
        max_request_bytes=sink.max_request_size,
        model_info=MODEL_INFO,
        clock=clock,
        pipeline_depth=pipeline_depth,
        runner=runner,
    )
    return Harness(source, sink, classifier, clock, registry, worker)


def texts(n: int, start: int = 0, partition: int = 0) -> list[FakeRecord]:
    return [rec(start + i, f"tweet number {start + i}", partition=partition) for i in range(n)]


def iso(millis: float) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")


# -- micro-batching ---------------------------------------------------------------------------


def test_a_batch_closes_at_max_batch_size_with_one_classifier_call():
    h = make(texts(10), batch=4)

    h.worker.step()
    assert [len(call) for call in h.classifier.calls] == [4]
    h.worker.step()
    assert [len(call) for call in h.classifier.calls] == [4, 4]
    assert len(h.sink.sent) == 8

    h.worker.step()  # two records left: below the size, before the wait → held
    assert [len(call) for call in h.classifier.calls] == [4, 4]
    assert len(h.sink.sent) == 8
    # every poll asked for at most the room left in the batch
    assert [max_records for _, max_records in h.source.polls] == [4, 4, 4]
    h.worker.step()
    assert h.source.polls[-1][1] == 2


def test_a_batch_closes_at_max_wait_after_its_first_record_and_the_poll_wait_shrinks():
    h = make(batch=10, wait_s=0.5, poll_timeout_s=0.1)
    h.worker.step()  # idle: the full poll timeout
    h.clock.advance(7.0)  # idle time does not count against a batch not yet opened
    h.worker.step()
    assert h.source.polls == [(0.1, 10), (0.1, 10)]

    h.source.feed(*texts(3))
    h.worker.step()  # the batch opens now, with three records
    assert h.classifier.calls == []

    h.clock.advance(0.25)
    h.worker.step()
    assert h.source.polls[-1] == pytest.approx((0.25, 7))
    assert h.classifier.calls == []

    h.source.feed(*texts(1, start=3))
    h.clock.advance(0.125)
    h.worker.step()
    assert h.source.polls[-1] == pytest.approx((0.125, 7))
    assert h.classifier.calls == []

    h.clock.advance(0.125)
    h.worker.step()  # max_wait after the first record: closes with what it has
    assert h.source.polls[-1] == pytest.approx((0, 6))
    assert [len(call) for call in h.classifier.calls] == [4]
    assert len(h.sink.sent) == 4

    h.worker.step()  # a fresh batch: back to the idle poll timeout
    assert h.source.polls[-1] == (0.1, 10)


# -- outputs ----------------------------------------------------------------------------------


def test_outputs_keep_input_order_key_headers_and_partition():
    records = [
        rec(
            10,
            '{"text": "good morning", "id": 1}',
            partition=0,
            key=b"k0",
            headers=[("trace", b"t0")],
        ),
        rec(
            20,
            '{"text": "so sad today", "id": "x2"}',
            partition=1,
            key=b"k1",
            headers=[("trace", b"t1"), ("h", b"v")],
        ),
        rec(11, '{"text": "meh", "id": 3}', partition=0, key=None),
        rec(21, '{"text": "what a lovely day", "id": 4}', partition=1, key=b"k3"),
        rec(12, '{"text": "fine by me", "id": 5}', partition=0, key=b"k4"),
    ]
    h = make(records, batch=5, auto_ack=True, input_format="json")
    h.worker.step()

    sent = h.sink.to(OUT)
    assert len(sent) == 5
    assert h.sink.to(DLQ) == []
    by_input = {(r.partition, r.offset): r for r in records}
    for partition in (0, 1):
        mine = [s for s in sent if s.partition == partition]
        offsets = [json.loads(s.value or b"")["source"]["offset"] for s in mine]
        assert offsets == sorted(offsets)
        assert offsets == [r.offset for r in records if r.partition == partition]
    for s in sent:
        body = json.loads(s.value or b"")
        original = by_input[(body["source"]["partition"], body["source"]["offset"])]
        assert s.key == original.key
        assert s.headers == list(original.headers)
        assert s.partition == original.partition

    first = json.loads(sent[0].value or b"")
    assert first == {
        "id": 1,
        "text": "good morning",
        "label": "positive",
        "probabilities": {"negative": 0.25, "positive": 0.75},
        "model": MODEL_INFO,
        "source": {"topic": IN, "partition": 0, "offset": 10},
        "event_time": iso(EVENT_MS),
        "labeled_at": iso(CLOCK_TIME * 1000),
    }
    second = next(b for b in map(json.loads, (x.value or b"" for x in sent)) if b["id"] == "x2")
    assert second["label"] == "negative"
    assert second["probabilities"] == {"negative": 0.8, "positive": 0.2}  # rounded float32
    for body in h.labels_out():
        assert body["label"] == FakeClassifier.expected_label(body["text"])


def test_a_record_without_timestamp_has_no_event_time_and_no_latency_sample():
    h = make([rec(0, "hello there", timestamp=-1)], batch=1, auto_ack=True)
    h.worker.step()
    assert h.labels_out()[0]["event_time"] is None
    assert h.metric("sentistream_records_labeled_total", label="positive") == 1
    assert h.metric("sentistream_event_to_label_seconds_count") == 0


def test_a_label_goes_to_its_input_partition_modulo_the_output_topics_partitions():
    sink = FakeSink(auto_ack=True, partition_counts={OUT: 2, DLQ: 1})
    records = [rec(n, f"tweet {n}", partition=n) for n in range(5)]
    h = make(records, batch=5, sink=sink)
    h.worker.step()
    assert [s.partition for s in sink.to(OUT)] == [0, 1, 0, 1, 0]


def test_an_output_topic_without_partitions_stops_the_worker_not_the_record():
    sink = FakeSink(auto_ack=True, partition_counts={DLQ: 1})  # OUT unknown to the producer
    h = make(texts(2), batch=2, sink=sink)
    with pytest.raises(SinkUnavailable):
        h.worker.step()
    assert sink.sent == []


# -- commit after delivery --------------------------------------------------------------------


def test_offsets_are_committed_only_after_every_delivery_of_the_batch_is_acknowledged():
    records = [*texts(2, partition=0), *texts(3, start=5, partition=1)]
    h = make(records, batch=5)
    h.worker.step()
    assert len(h.sink.pending()) == 5

    h.clock.advance(1.0)
    h.worker.step()
    assert h.source.commits == []

    for index in range(4):  # all but one
        h.sink.ack(index)
    h.clock.advance(1.0)
    h.worker.step()
    assert h.source.commits == []

    h.sink.ack_all()
    h.worker.step()
    assert h.source.commits == [{TP0: 2, TP1: 8}]
    assert h.metric("sentistream_commits_total") == 1

    h.clock.advance(5.0)
    h.worker.step()  # nothing new: no empty commit
    assert len(h.source.commits) == 1


def test_delivered_offsets_are_committed_at_most_once_per_commit_interval():
    h = make(texts(2), batch=2, auto_ack=True, commit_interval_s=0.5)
    h.worker.step()  # delivered at once, but no time has passed since the worker started
    assert h.source.commits == []
    h.clock.advance(0.25)
    h.worker.step()
    assert h.source.commits == []
    h.clock.advance(0.25)
    h.worker.step()
    assert h.source.commits == [{TP0: 2}]

    h.source.feed(*texts(2, start=2))
    h.clock.advance(0.25)
    h.worker.step()  # delivered 0.25 s after the last commit: waits
    assert len(h.source.commits) == 1
    h.clock.advance(0.25)
    h.worker.step()
    assert h.source.commits == [{TP0: 2}, {TP0: 4}]


def test_a_later_batch_acknowledged_first_is_not_committed_past_an_earlier_one():
    h = make(texts(6), batch=2)
    h.worker.step()  # batch A: offsets 0, 1 → sends 0, 1
    h.worker.step()  # batch B: offsets 2, 3 → sends 2, 3
    h.worker.step()  # batch C: offsets 4, 5 → sends 4, 5
    assert len(h.sink.sent) == 6

    h.sink.ack(2)
    h.sink.ack(3)
    h.sink.ack(5)
    h.sink.ack(4)
    h.clock.advance(1.0)
    h.worker.step()
    assert h.source.commits == []

    h.sink.ack(0)  # A half done
    h.clock.advance(1.0)
    h.worker.step()
    assert h.source.commits == []

    h.sink.ack(1)  # A done: A, B and C are all committable, in order
    h.clock.advance(1.0)
    h.worker.step()
    assert h.source.commits == [{TP0: 6}]


def test_an_acknowledged_earlier_batch_is_committed_while_a_later_one_is_pending():
    h = make(texts(4), batch=2)
    h.worker.step()
    h.worker.step()
    h.sink.ack(0)
    h.sink.ack(1)
    h.sink.ack(3)
    h.clock.advance(1.0)
    h.worker.step()
    assert h.source.commits == [{TP0: 2}]


def test_a_failed_delivery_raises_and_nothing_is_committed():
    h = make(texts(2), batch=2)
    h.worker.step()
    cause = RuntimeError("NotEnoughReplicas after retries")
    h.sink.ack(0)
    h.sink.fail(1, cause)
    h.clock.advance(1.0)
    with pytest.raises(DeliveryFailed) as raised:
        h.worker.step()
    assert raised.value.__cause__ is cause
    assert h.source.commits == []
    assert h.metric("sentistream_commits_total") == 0
    assert (
        h.metric("sentistream_records_labeled_total", label="positive")
        + h.metric("sentistream_records_labeled_total", label="negative")
        == 1
    )


def test_a_consumer_kafka_refuses_for_good_stops_the_loop_and_commits_nothing_after() -> None:
    """The adapters raise SourceFailed (not authorized, a fatal client error); the loop must
    let it reach the worker's exit, not take it for a bad record or an empty poll."""
    h = make(texts(2), batch=2, auto_ack=True)
    h.worker.step()
    commits = list(h.source.commits)
    h.source.feed(*texts(2, start=2))
    refusal = SourceFailed.not_authorized_for_group("g", "GroupAuthorizationFailedError")
    h.source.refuse_polls = refusal
    h.clock.advance(1.0)
    with pytest.raises(SourceFailed) as raised:
        h.worker.step()
    assert raised.value is refusal
    assert h.source.commits == commits  # nothing read after the refusal is committed
    assert h.metric("sentistream_records_dead_lettered_total", reason="internal_error") == 0


# -- commit refused ---------------------------------------------------------------------------


def test_a_refused_commit_is_counted_and_the_loop_goes_on():
    h = make(texts(2), batch=2, auto_ack=True)
    h.source.refuse_commits = 1
    h.worker.step()
    h.clock.advance(0.5)
    h.worker.step()
    assert h.source.refused == [{TP0: 2}]
    assert h.metric("sentistream_commit_failures_total", reason="rebalance") == 1
    assert h.metric("sentistream_commits_total") == 0

    h.source.feed(*texts(2, start=2))
    h.worker.step()
    h.clock.advance(0.5)
    h.worker.step()
    assert h.source.commits == [{TP0: 4}]
    assert h.metric("sentistream_commits_total") == 1
    assert h.metric("sentistream_commit_failures_total", reason="rebalance") == 1


def test_a_commit_kafka_cannot_take_is_kept_and_retried_without_going_backwards():
    h = make(texts(2), batch=2, auto_ack=True)
    h.source.unavailable_commits = 2
    h.worker.step()
    h.clock.advance(0.5)
    h.worker.step()  # fails: offsets kept
    assert h.source.refused == [{TP0: 2}]
    assert h.metric("sentistream_commit_failures_total", reason="unavailable") == 1

    h.source.feed(*texts(2, start=2))
    h.worker.step()
    h.clock.advance(0.5)
    h.worker.step()  # fails again, now carrying the newer offset, not the kept older one
    assert h.source.refused[-1] == {TP0: 4}
    h.clock.advance(0.5)
    h.worker.step()  # Kafka is back
    assert h.source.commits == [{TP0: 4}]
    assert h.metric("sentistream_commit_failures_total", reason="unavailable") == 2
    assert h.metric("sentistream_commits_total") == 1


# -- shutdown ---------------------------------------------------------------------------------


def test_stop_then_drain_processes_flushes_and_commits_the_batch_in_hand():
    h = make(texts(3), batch=10, wait_s=5.0)
    h.worker.step()
    assert h.classifier.calls == []
    h.worker.stop()
    assert h.worker.stopping

    assert h.worker.drain(7.0).clean
    assert [len(call) for call in h.classifier.calls] == [3]
    assert h.sink.flushes == [7.0]
    assert h.sink.pending() == []
    assert h.source.commits == [{TP0: 3}]  # at shutdown regardless of the commit interval


def test_drain_returns_false_when_deliveries_stay_pending_and_commits_only_what_was_acked():
    h = make(texts(3), batch=2, wait_s=5.0)
    h.worker.step()  # batch of two sent
    h.worker.step()  # one record in hand
    h.sink.ack_all()
    h.sink.hang = True
    h.worker.stop()

    report = h.worker.drain(1.0)
    assert not report.clean
    assert report.undelivered == 1
    assert report.committed  # what was acknowledged is committed, even so
    assert len(h.sink.pending()) == 1
    assert h.source.commits == [{TP0: 2}]


class _StopWhenEmpty(FakeSource):
    """Asks the worker to stop once its queue is empty, as a SIGTERM handler would."""

    worker: Worker | None = None

    def poll(self, timeout_s: float, max_records: int) -> Any:
        polled = super().poll(timeout_s, max_records)
        if self.queued() == 0 and self.worker is not None:
            self.worker.stop()
        return polled


def test_run_steps_until_stopped_then_drains():
    source = _StopWhenEmpty(texts(6))
    h = make(batch=4, wait_s=5.0, source=source)
    source.worker = h.worker

    assert h.worker.run(drain_timeout_s=3.0).clean
    assert [len(call) for call in h.classifier.calls] == [4, 2]
    assert source.commits[-1] == {TP0: 6}
    assert h.sink.flushes == [3.0]
