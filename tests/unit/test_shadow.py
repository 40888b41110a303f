"""The shadow model: off the primary's path, bounded, drop-and-count; nothing sleeps (the tests
call ``run_once`` where the worker has a thread)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sentistream.worker.core.batcher import BatchPolicy
from sentistream.worker.core.classify import Labelled, Verdict
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.messages import InvalidMessage, Tweet
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.publish import Topics
from sentistream.worker.core.shadow import AGREEMENT_WINDOW, Shadow, sampled
from tests.unit.fakes import FakeClassifier, FakeClock, FakeRecord, FakeSink, FakeSource

IN, OUT, DLQ, SHADOW = "tweets", "tweet-labels", "tweets.dlq", "tweet-labels.shadow"
PRIMARY = {"name": "primary", "version": "1", "sha256": "sha-primary"}
CANDIDATE = {"name": "candidate", "version": "2", "sha256": "sha-candidate"}
NOW_MS = 1_700_000_000_000.0


class Contrarian(FakeClassifier):
    """Labels every tweet the other way round from FakeClassifier."""

    POSITIVE: Any = FakeClassifier.NEGATIVE
    NEGATIVE: Any = FakeClassifier.POSITIVE


def record(offset: int, text: str, partition: int = 0) -> FakeRecord:
    value = json.dumps({"id": f"id-{partition}-{offset}", "text": text}).encode()
    return FakeRecord(IN, partition, offset, -1, f"k{offset}".encode(), value)


def labelled(rec: FakeRecord, text: str) -> Labelled:
    label = FakeClassifier.expected_label(text)
    probabilities = {"negative": 0.5, "positive": 0.5}
    return Labelled(Tweet(text=text, id=f"id-{rec.partition}-{rec.offset}"), label, probabilities)


def batch(n: int, start: int = 0) -> tuple[list[FakeRecord], list[Verdict]]:
    texts = [("a b" if i % 2 else "a") + f" {i}" for i in range(start, start + n)]
    records = [record(start + i, t) for i, t in enumerate(texts)]
    return records, [labelled(r, t) for r, t in zip(records, texts, strict=True)]


def make(
    classifier: FakeClassifier | None = None, *, fraction: float = 1.0, pending: int = 4
) -> tuple[Shadow, FakeSink, CollectorRegistry]:
    registry = CollectorRegistry()
    sink = FakeSink(auto_ack=True)
    shadow = Shadow(
        classifier or FakeClassifier(),
        CANDIDATE,
        sink,
        SHADOW,
        WorkerMetrics.create(registry),
        fraction=fraction,
        max_pending_batches=pending,
        now_ms=lambda: NOW_MS,
    )
    return shadow, sink, registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(name, labels)
    assert sample is not None, name
    return sample


def test_shadow_metrics_exist_from_the_start_and_agreement_is_nan_until_compared() -> None:
    _, _, registry = make()
    assert math.isnan(value(registry, "sentistream_shadow_agreement_ratio"))
    for reason in ("behind", "failed"):
        assert value(registry, "sentistream_shadow_dropped_records_total", reason=reason) == 0
    for agree in ("true", "false"):
        assert value(registry, "sentistream_shadow_compared_records_total", agree=agree) == 0


def test_the_shadow_labels_the_batch_beside_the_primary_label() -> None:
    shadow, sink, registry = make(Contrarian())
    records, verdicts = batch(4)
    shadow.offer(records, verdicts, PRIMARY)
    assert sink.sent == []  # nothing happens on the loop's side
    assert shadow.run_once()
    sent = sink.to(SHADOW)
    assert len(sent) == 4
    for rec, verdict, out in zip(records, verdicts, sent, strict=True):
        assert isinstance(verdict, Labelled)
        body = json.loads(out.value or b"")
        assert body["id"] == verdict.tweet.id
        assert body["model"] == CANDIDATE
        assert body["primary"] == {"label": verdict.label, "model": PRIMARY}
        assert body["label"] != verdict.label
        assert body["agree"] is False
        assert body["source"] == {"topic": IN, "partition": 0, "offset": rec.offset}
        assert out.key == rec.key
        assert out.partition == rec.partition
    assert value(registry, "sentistream_shadow_agreement_ratio") == 0.0
    assert value(registry, "sentistream_shadow_compared_records_total", agree="false") == 4


def test_agreement_is_the_share_over_the_last_thousand() -> None:
    shadow, _, registry = make(FakeClassifier())  # agrees with FakeClassifier's labels
    records, verdicts = batch(AGREEMENT_WINDOW)
    shadow.offer(records, verdicts, PRIMARY)
    shadow.run_once()
    assert value(registry, "sentistream_shadow_agreement_ratio") == 1.0
    shadow.classifier = Contrarian()
    records, verdicts = batch(250, start=AGREEMENT_WINDOW)
    shadow.offer(records, verdicts, PRIMARY)
    shadow.run_once()
    assert value(registry, "sentistream_shadow_agreement_ratio") == 0.75
    assert value(registry, "sentistream_shadow_compared_records_total", agree="true") == 1000


def test_a_shadow_that_is_behind_drops_and_counts_and_offer_never_blocks() -> None:
    shadow, sink, registry = make(pending=2)
    for start in range(0, 20, 4):  # five batches, nobody takes them out
        shadow.offer(*batch(4, start), PRIMARY)
    assert value(registry, "sentistream_shadow_dropped_records_total", reason="behind") == 12
    while shadow.run_once():
        pass
    assert len(sink.to(SHADOW)) == 8


def test_a_failing_shadow_model_is_counted_and_never_raises() -> None:
    shadow, sink, registry = make(FakeClassifier(always_fail=True))
    shadow.offer(*batch(4), PRIMARY)
    assert shadow.run_once()
    assert sink.sent == []
    assert value(registry, "sentistream_shadow_dropped_records_total", reason="failed") == 4
    assert math.isnan(value(registry, "sentistream_shadow_agreement_ratio"))


def test_dead_letters_are_not_shadowed() -> None:
    shadow, sink, _ = make()
    records, verdicts = batch(2)
    verdicts[0] = InvalidMessage("empty_text", "no text")
    shadow.offer(records, verdicts, PRIMARY)
    shadow.run_once()
    assert [json.loads(s.value or b"")["source"]["offset"] for s in sink.to(SHADOW)] == [1]


def test_the_sample_is_a_stable_fraction() -> None:
    records = [record(offset, "x", partition) for partition in range(3) for offset in range(2000)]
    picked = [r for r in records if sampled(r, 0.25)]
    assert 0.22 < len(picked) / len(records) < 0.28
    assert picked == [r for r in records if sampled(r, 0.25)]
    assert all(sampled(r, 1.0) for r in records)
    shadow, sink, _ = make(fraction=0.25)
    recs, verdicts = batch(400)
    shadow.offer(recs, verdicts, PRIMARY)
    shadow.run_once()
    offsets = [json.loads(s.value or b"")["source"]["offset"] for s in sink.to(SHADOW)]
    assert offsets == [r.offset for r in recs if sampled(r, 0.25)]


def test_the_thread_starts_and_stops() -> None:
    shadow, _, _ = make()
    shadow.offer(*batch(3), PRIMARY)
    shadow.start()
    shadow.close(timeout_s=10)
    assert shadow._thread is not None
    assert not shadow._thread.is_alive()


@pytest.mark.parametrize("shadow_classifier", [FakeClassifier(always_fail=True), Contrarian()])
def test_the_primary_output_is_the_same_with_a_broken_or_disagreeing_shadow(
    shadow_classifier: FakeClassifier,
) -> None:
    def run(with_shadow: bool) -> tuple[list[bytes | None], FakeSink]:
        source = FakeSource([record(i, "a b" * (i % 3 + 1)) for i in range(10)])
        sink = FakeSink(auto_ack=True)
        shadow = None
        if with_shadow:
            shadow, _, _ = make(shadow_classifier)
            shadow.sink = sink
        worker = Worker(
            source,
            sink,
            FakeClassifier(),
            WorkerMetrics.create(CollectorRegistry()),
            policy=BatchPolicy(max_batch_size=4, max_wait_s=0.0),
            topics=Topics(output=OUT, dead_letter=DLQ),
            model_info=PRIMARY,
            clock=FakeClock(time=NOW_MS / 1000),
            shadow=shadow,
        )
        for _ in range(4):
            worker.step()
            if shadow is not None:
                shadow.run_once()
        worker.drain(1.0)
        return [s.value for s in sink.to(OUT)], sink

    plain, _ = run(with_shadow=False)
    shadowed, sink = run(with_shadow=True)
    assert shadowed == plain
    assert len(plain) == 10
    assert len(sink.to(SHADOW)) == (0 if shadow_classifier.always_fail else 10)
