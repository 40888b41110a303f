"""Hot model reload on a real broker: a worker process labels a steady stream while the
"current" symlink it serves from is switched to another model folder.

The figures (tweets, swap offset per partition, lost, duplicated, the longest gap between two
labels around the swap) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from tests.integration.worker_process import (
    INT8_MODEL,
    SHIPPED_MODEL,
    Topics,
    WorkerProcess,
    consume_all,
    onnx_sha,
    real_tweets,
    requires_int8_model,
    requires_shipped_model,
)

PARTITIONS = 3
RATE_PER_S = 400
TICK_S = 0.05

pytestmark = [requires_shipped_model, requires_int8_model]


def point(link: Path, target: Path) -> None:
    """Switch ``link`` to ``target`` atomically, as an operator (or a kubelet) does."""
    staged = link.with_name(link.name + ".next")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target.resolve())
    staged.replace(link)


class SteadyStream:
    """Sends tweets round-robin over the partitions at a steady rate, on a thread."""

    def __init__(self, bootstrap: str, topic: str, texts: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.texts = texts
        self.sent: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="steady-stream", daemon=True)

    def _run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        per_tick = max(1, int(RATE_PER_S * TICK_S))
        next_tick = time.monotonic()
        n = 0
        while not self.stop.is_set():
            for _ in range(per_tick):
                tweet_id = f"t{n}"
                text = self.texts[n % len(self.texts)]
                producer.send(
                    self.topic,
                    partition=n % PARTITIONS,
                    key=tweet_id.encode(),
                    value=json.dumps({"id": tweet_id, "text": text}).encode(),
                )
                self.sent.append(tweet_id)
                n += 1
            next_tick += TICK_S
            self.stop.wait(max(0.0, next_tick - time.monotonic()))
        producer.flush()
        producer.close()

    def run_for(self, seconds: float, at: float, action: Callable[[], None]) -> None:
        """Stream for ``seconds``; call ``action`` ``at`` seconds in."""
        self.thread.start()
        time.sleep(at)
        action()
        time.sleep(seconds - at)
        self.stop.set()
        self.thread.join(timeout=60)


def wait_for_metric(worker: WorkerProcess, name: str, value: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while worker.metric(name) < value:
        if time.monotonic() > deadline or worker.process.poll() is not None:
            pytest.fail(f"{name} stayed below {value}:\n{worker.log()}", pytrace=False)
        time.sleep(0.2)


def labelled_at(out: dict[str, Any]) -> float:
    return datetime.fromisoformat(out["labeled_at"]).timestamp()


def test_switching_the_model_symlink_swaps_models_between_batches_and_loses_nothing(
    kafka_bootstrap: str,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    old_sha, new_sha = onnx_sha(SHIPPED_MODEL), onnx_sha(INT8_MODEL)
    assert old_sha != new_sha
    link = tmp_path / "current"
    point(link, SHIPPED_MODEL)
    worker = start_worker(model_dir=str(link), model_check_interval_s="1")
    worker.wait_ready()

    stream = SteadyStream(kafka_bootstrap, topics.input, real_tweets(2_000))
    switched_at: list[float] = []

    def switch() -> None:
        switched_at.append(time.time())
        point(link, INT8_MODEL)

    stream.run_for(10.0, at=4.0, action=switch)
    records = consume_all(
        kafka_bootstrap, topics.output, until=len(stream.sent), cover=stream.sent, idle=2.0
    )
    outputs = [json.loads(r.value) for r in records]

    # every input labelled once
    counts = Counter(o["id"] for o in outputs)
    lost = set(stream.sent) - set(counts)
    duplicated = {i: c for i, c in counts.items() if c > 1}
    assert not lost
    assert not duplicated

    # in order per partition, and the model switches at one offset per partition
    swap_offsets: dict[int, int] = {}
    for partition in range(PARTITIONS):
        mine = [(r.offset, json.loads(r.value)) for r in records if r.partition == partition]
        mine.sort()  # output order within the partition
        sources = [o["source"]["offset"] for _, o in mine]
        assert sources == sorted(sources), f"partition {partition} out of order"
        assert all(o["source"]["partition"] == partition for _, o in mine)
        shas = [o["model"]["sha256"] for _, o in mine]
        assert set(shas) == {old_sha, new_sha}, f"partition {partition}: {Counter(shas)}"
        first_new = shas.index(new_sha)
        assert shas == [old_sha] * first_new + [new_sha] * (len(shas) - first_new)
        swap_offsets[partition] = sources[first_new]

    assert worker.metric("sentistream_model_reloads_total") == 1
    assert worker.metric("sentistream_model_reload_failures_total") == 0
    assert worker.metric("sentistream_model_info", {"sha256": new_sha}) == 1
    assert worker.metric("sentistream_model_info", {"sha256": old_sha}) == 0

    # the longest gap between two labels (all partitions) within 3 s either side of the swap
    times = sorted(labelled_at(o) for o in outputs)
    swap_time = min(labelled_at(o) for o in outputs if o["model"]["sha256"] == new_sha)
    pairs = list(itertools.pairwise(times))
    gaps = [b - a for a, b in pairs if abs(a - swap_time) <= 3.0 or abs(b - swap_time) <= 3.0]
    elsewhere = [b - a for a, b in pairs if min(abs(a - swap_time), abs(b - swap_time)) > 3.0]
    figures = {
        "tweets": len(stream.sent),
        "labels": len(outputs),
        "swap_offset_per_partition": swap_offsets,
        "lost": len(lost),
        "duplicated": sum(c - 1 for c in duplicated.values()),
        "switch_to_first_new_label_s": round(swap_time - switched_at[0], 3),
        "longest_gap_around_swap_ms": round(max(gaps) * 1000, 1),
        "median_gap_ms": round(statistics.median(b - a for a, b in pairs) * 1000, 1),
        "longest_gap_elsewhere_ms": round(max(elsewhere) * 1000, 1),
    }
    print(f"\nmodel reload figures: {json.dumps(figures)}")
    assert max(gaps) < 2.0, figures
    assert "now serves, replacing" in worker.log()


def test_a_broken_model_folder_is_refused_and_the_old_model_keeps_serving(
    kafka_bootstrap: str,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(INT8_MODEL, broken)
    with (broken / "model.onnx").open("ab") as onnx:
        onnx.write(b"\0" * 16)  # the file no longer matches its sha256 in the manifest
    old_sha = onnx_sha(SHIPPED_MODEL)
    link = tmp_path / "current"
    point(link, SHIPPED_MODEL)
    # no timed checks: SIGHUP alone makes the worker look
    worker = start_worker(model_dir=str(link), model_check_interval_s="0")
    worker.wait_ready()

    stream = SteadyStream(kafka_bootstrap, topics.input, real_tweets(500))

    def switch() -> None:
        point(link, broken)
        worker.process.send_signal(signal.SIGHUP)

    stream.run_for(5.0, at=2.0, action=switch)
    wait_for_metric(worker, "sentistream_model_reload_failures_total", 1)
    records = consume_all(
        kafka_bootstrap, topics.output, until=len(stream.sent), cover=stream.sent, idle=1.0
    )
    outputs = [json.loads(r.value) for r in records]
    assert sorted(o["id"] for o in outputs) == sorted(stream.sent)
    assert {o["model"]["sha256"] for o in outputs} == {old_sha}
    assert worker.metric("sentistream_model_reloads_total") == 0
    assert worker.metric("sentistream_model_reload_failures_total") == 1
    assert worker.metric("sentistream_model_info", {"sha256": old_sha}) == 1
    assert worker.process.poll() is None
    assert worker.get("/readyz")[0] == 200
    log = worker.log()
    assert "refusing the model in" in log
    assert "sha256" in log.split("refusing the model in", 1)[1].splitlines()[0]
