"""The shadow model on a real broker: a worker process labels tweets with the primary model and
a sample of them with a second one, into the shadow topic."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sentistream.worker.core.shadow import sampled
from tests.integration.conftest import TopicFactory
from tests.integration.worker_process import (
    INT8_MODEL,
    SHIPPED_MODEL,
    Topics,
    WorkerProcess,
    consume_all,
    onnx_sha,
    produce_json,
    real_tweets,
    requires_int8_model,
    requires_shipped_model,
)
from tests.unit.fakes import FakeRecord

TWEETS = 600
FRACTION = 0.5

pytestmark = [requires_shipped_model, requires_int8_model]


def picked(topic: str, source: dict[str, int]) -> bool:
    """Whether the worker's shadow saw the input record at ``source``."""
    position = FakeRecord(topic, source["partition"], source["offset"], -1, None, None)
    return sampled(position, FRACTION)


def test_the_shadow_labels_a_stable_sample_beside_the_primary(
    kafka_bootstrap: str,
    topics: Topics,
    topic_factory: TopicFactory,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    shadow_topic = topic_factory(partitions=3, prefix="shadow")
    worker = start_worker(
        shadow_model_dir=str(INT8_MODEL), shadow_fraction=str(FRACTION), shadow_topic=shadow_topic
    )
    worker.wait_ready()
    ids = produce_json(kafka_bootstrap, topics.input, real_tweets(TWEETS))
    primary = [json.loads(r.value) for r in consume_all(kafka_bootstrap, topics.output, cover=ids)]
    expected = {o["id"] for o in primary if picked(topics.input, o["source"])}
    assert 0.35 * TWEETS < len(expected) < 0.65 * TWEETS
    shadow = [
        json.loads(r.value)
        for r in consume_all(kafka_bootstrap, shadow_topic, cover=expected, idle=1.0)
    ]
    by_id = {o["id"]: o for o in primary}
    assert sorted(o["id"] for o in shadow) == sorted(expected)  # each once, only the sample
    for out in shadow:
        assert out["model"]["sha256"] == onnx_sha(INT8_MODEL)
        assert out["primary"]["model"]["sha256"] == onnx_sha(SHIPPED_MODEL)
        assert out["primary"]["label"] == by_id[out["id"]]["label"]
        assert out["agree"] == (out["label"] == out["primary"]["label"])
        assert out["source"] == by_id[out["id"]]["source"]
    # the primary is as without a shadow: every tweet, its own model
    assert sorted(o["id"] for o in primary) == sorted(ids)
    assert {o["model"]["sha256"] for o in primary} == {onnx_sha(SHIPPED_MODEL)}
    agreed = sum(o["agree"] for o in shadow) / len(shadow)
    assert worker.metric("sentistream_shadow_agreement_ratio") == pytest.approx(agreed)
    assert worker.metric("sentistream_shadow_compared_records_total") == len(shadow)
    assert worker.metric("sentistream_shadow_dropped_records_total") == 0
    print(f"\nshadow: {len(shadow)} of {TWEETS} tweets, agreement {agreed:.4f}")


def test_a_broken_shadow_model_leaves_the_primary_serving(
    kafka_bootstrap: str,
    topics: Topics,
    topic_factory: TopicFactory,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(INT8_MODEL, broken)
    (broken / "tokenizer.json").write_text("{}")  # no longer the tokenizer the manifest names
    worker = start_worker(
        shadow_model_dir=str(broken), shadow_topic=topic_factory(partitions=3, prefix="shadow")
    )
    worker.wait_ready()
    ids = produce_json(kafka_bootstrap, topics.input, real_tweets(100))
    primary = consume_all(kafka_bootstrap, topics.output, cover=ids)
    assert len(primary) == len(ids)
    assert "shadow model off: ManifestError" in worker.log()
    assert worker.process.poll() is None
