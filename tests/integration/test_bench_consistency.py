"""The benchmark's end-to-end figures are counts of labels on the output topic (not timed).

A small backlog and one short paced run through a real broker and worker; the test reads the
output topic itself, with another client, and finds the benchmark's figures there; the same
for the capacity search's probes.
"""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

from sentistream.bench.capacity import CapacitySettings
from sentistream.bench.e2e import Session, run_end_to_end
from tests.integration.worker_process import SHIPPED_MODEL

TWEETS = 300


def read_output(bootstrap: str, topic: str) -> list[tuple[int, str]]:
    """(stored time, tweet id) of every label, read with kafka-python."""
    import json

    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    try:
        out: list[tuple[int, str]] = []
        empty = 0
        while empty < 5:
            polled = consumer.poll(timeout_ms=500)
            empty = 0 if polled else empty + 1
            for records in polled.values():
                out += [(r.timestamp, json.loads(r.value)["id"]) for r in records]
        return out
    finally:
        consumer.close()


def test_the_end_to_end_figures_are_counted_on_the_output_topic(bench_session: Session):
    texts = [f"tweet {n}: what a {'great' if n % 2 else 'awful'} day" for n in range(TWEETS)]
    result = run_end_to_end(
        bench_session,
        SHIPPED_MODEL,
        texts,
        fractions=(0.5,),
        latency_seconds=1.0,
        log=lambda _: None,
    )

    labels = read_output(bench_session.broker.bootstrap, result.topics["output"])
    backlog = [(stamp, tweet_id) for stamp, tweet_id in labels if tweet_id.startswith("backlog-")]
    ids = {tweet_id for _, tweet_id in backlog}
    assert ids == {f"backlog-{n}" for n in range(TWEETS)}
    assert result.backlog.labels_on_topic == len(ids) == TWEETS
    span = (max(s for s, _ in backlog) - min(s for s, _ in backlog)) / 1000
    assert result.backlog.span_s == pytest.approx(span)
    assert result.backlog.throughput_per_s == pytest.approx(TWEETS / max(span, 1e-3))
    assert result.backlog.worker_labeled_total == TWEETS  # the worker agrees, as a cross-check

    (paced,) = result.latency
    paced_ids = {tweet_id for _, tweet_id in labels if tweet_id.startswith("lat0.5-")}
    assert paced.labels_on_topic == len(paced_ids) == paced.tweets
    assert len(paced.samples_ms) == paced.tweets
    assert paced.latency_ms["p50"] <= paced.latency_ms["p99"] <= paced.latency_ms["max"]


def test_each_probe_is_a_paced_run_counted_on_the_output_topic(bench_session: Session):
    texts = [f"tweet {n}: what a {'great' if n % 2 else 'awful'} day" for n in range(TWEETS)]
    result = run_end_to_end(
        bench_session,
        SHIPPED_MODEL,
        texts,
        fractions=(0.5,),
        latency_seconds=1.0,
        capacity=CapacitySettings(bound_ms=1e9, seconds=1.0, max_probes=2),  # every probe passes
        log=lambda _: None,
    )

    found = result.capacity
    assert found is not None
    assert [(p.source, p.fraction) for p in found.probes] == [
        ("fractions", 0.5),
        ("search", 0.75),
        ("search", 0.875),
    ]
    assert found.per_s == 0.875 * result.backlog.throughput_per_s
    labels = read_output(bench_session.broker.bootstrap, result.topics["output"])
    for n, probe in enumerate(found.probes[1:]):
        ids = {tweet_id for _, tweet_id in labels if tweet_id.startswith(f"cap{n}-")}
        assert len(ids) == probe.stats["tweets"] == probe.stats["labels_on_topic"]
        assert probe.stats["tweets"] == max(1, int(probe.offered_per_s * 1.0))
        ms = probe.stats["latency_ms"]
        assert ms["p50"] <= ms["p99"] == probe.p99_ms <= ms["max"]
