"""Hot model reload: the model slot and the loop's swap between micro-batches; nothing sleeps.

Checks and loads run on a :class:`ManualRunner` here: the test decides when the background
work happens, so "the loop keeps serving while a model loads" is a plain assertion.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry

from sentistream.manifest import ManifestError
from sentistream.worker.core.batcher import BatchPolicy
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.model_slot import (
    ModelRefused,
    ModelSlot,
    ServedModel,
    manifest_fingerprint,
    warm_up,
)
from sentistream.worker.core.publish import Topics
from sentistream.worker.core.runners import InlineRunner, ThreadRunner
from tests.unit.fakes import FakeClassifier, FakeClock, FakeRecord, FakeSink, FakeSource

T = TypeVar("T")
IN, OUT, DLQ = "tweets", "tweet-labels", "tweets.dlq"
INTERVAL_S = 5.0
REPO_ROOT = Path(__file__).resolve().parents[2]


class ManualRunner:
    """Background work that runs only when the test says so."""

    def __init__(self) -> None:
        self.queued: list[tuple[Callable[[], Any], Future[Any]]] = []
        self.submitted = 0

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self.queued.append((fn, future))
        self.submitted += 1
        return future

    def run_all(self) -> None:
        while self.queued:
            fn, future = self.queued.pop(0)
            future.set_result(fn())


class NewClassifier(FakeClassifier):
    """Same labels, opposite opinions: its outputs are told apart from the old model's."""

    POSITIVE: Any = np.array([0.9, 0.1], dtype=np.float32)
    NEGATIVE: Any = np.array([0.3, 0.7], dtype=np.float32)


class BadOutput(FakeClassifier):
    def __init__(self, rows: Callable[[int], npt.NDArray[np.float32]]) -> None:
        super().__init__()
        self.rows = rows

    def predict_ids(self, ids: Any) -> npt.NDArray[np.float32]:
        return self.rows(len(ids))


class ThreeLabels(FakeClassifier):
    labels = ("negative", "neutral", "positive")


def served(name: str, classifier: FakeClassifier | None = None) -> ServedModel:
    return ServedModel(
        classifier or FakeClassifier(),
        {"name": name, "version": "1", "sha256": f"sha-{name}"},
        f"fp-{name}",
        Path("/models") / name,
    )


class Folders:
    """What the fake model volume holds: folder name → fingerprint, and what loading gives."""

    def __init__(self) -> None:
        self.link = "old"
        self.models: dict[str, ServedModel | Exception] = {}
        self.loads: list[Path] = []

    def fingerprint(self, folder: Path) -> str:
        if folder.name not in self.models and folder.name != "old":
            raise FileNotFoundError(f"{folder}/manifest.json")
        return f"fp-{folder.name}"

    def load(self, folder: Path) -> ServedModel:
        self.loads.append(folder)
        result = self.models[folder.name]
        if isinstance(result, Exception):
            raise result
        return result


class LinkedFolders(Folders):
    """``--model-dir`` is /models/current; the link points at ``self.link``."""

    def fingerprint(self, folder: Path) -> str:
        return super().fingerprint(Path("/models") / self.link)

    def load(self, folder: Path) -> ServedModel:
        return super().load(Path("/models") / self.link)


def make_slot(
    folders: Folders, runner: Any, clock: FakeClock, registry: CollectorRegistry
) -> ModelSlot:
    return ModelSlot(
        served("old"),
        WorkerMetrics.create(registry),
        folder=Path("/models/current"),
        load=folders.load,
        runner=runner,
        interval_s=INTERVAL_S,
        now=clock.monotonic(),
        fingerprint=folders.fingerprint,
    )


def metric(registry: CollectorRegistry, metric_name: str, **labels: str) -> float:
    return registry.get_sample_value(metric_name, labels) or 0.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


# -- the slot on its own --------------------------------------------------------------------------


def test_reload_counters_exist_at_zero_from_the_start(registry: CollectorRegistry) -> None:
    WorkerMetrics.create(registry)
    assert registry.get_sample_value("sentistream_model_reloads_total") == 0
    assert registry.get_sample_value("sentistream_model_reload_failures_total") == 0


def test_the_manifest_is_checked_every_interval_and_an_unchanged_one_loads_nothing(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    folders = LinkedFolders()
    runner = ManualRunner()
    slot = make_slot(folders, runner, clock, registry)
    assert slot.poll(clock.monotonic()) is None
    clock.advance(INTERVAL_S - 0.1)
    assert slot.poll(clock.monotonic()) is None
    assert runner.submitted == 0
    clock.advance(0.1)
    assert slot.poll(clock.monotonic()) is None
    assert runner.submitted == 1
    runner.run_all()
    assert slot.poll(clock.monotonic()) is None
    assert folders.loads == []
    assert metric(registry, "sentistream_model_reloads_total") == 0
    assert slot.current.info["name"] == "old"


def test_a_new_manifest_is_loaded_aside_and_swapped_in_once_ready(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    folders = LinkedFolders()
    folders.models["new"] = served("new", NewClassifier())
    runner = ManualRunner()
    slot = make_slot(folders, runner, clock, registry)
    folders.link = "new"
    clock.advance(INTERVAL_S)
    assert slot.poll(clock.monotonic()) is None  # the check is submitted, not done
    clock.advance(1.0)
    assert slot.poll(clock.monotonic()) is None  # still loading: the old model serves
    assert slot.busy
    assert slot.current.info["name"] == "old"
    runner.run_all()
    swapped = slot.poll(clock.monotonic())
    assert swapped is not None
    assert swapped.info["name"] == "new"
    assert slot.current is swapped
    assert not slot.busy
    assert metric(registry, "sentistream_model_reloads_total") == 1
    assert metric(registry, "sentistream_model_reload_failures_total") == 0
    assert metric(registry, "sentistream_model_info", name="new", version="1", sha256="sha-new")
    assert not metric(registry, "sentistream_model_info", name="old", version="1", sha256="sha-old")


def test_sighup_checks_at_once(clock: FakeClock, registry: CollectorRegistry) -> None:
    folders = LinkedFolders()
    folders.models["new"] = served("new")
    slot = make_slot(folders, InlineRunner(), clock, registry)
    folders.link = "new"
    slot.request_check()
    swapped = slot.poll(clock.monotonic())  # no time has passed
    assert swapped is not None
    assert swapped.info["name"] == "new"


def test_interval_zero_checks_only_on_sighup(clock: FakeClock, registry: CollectorRegistry) -> None:
    folders = LinkedFolders()
    folders.models["new"] = served("new")
    runner = ManualRunner()
    slot = make_slot(folders, runner, clock, registry)
    slot.interval_s = 0
    folders.link = "new"
    for _ in range(3):
        clock.advance(3600)
        assert slot.poll(clock.monotonic()) is None
    assert runner.submitted == 0
    slot.request_check()
    slot.poll(clock.monotonic())
    runner.run_all()
    assert slot.poll(clock.monotonic()) is not None


def test_a_model_that_fails_to_load_is_refused_counted_and_not_retried_until_sighup(
    clock: FakeClock, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    folders = LinkedFolders()
    folders.models["broken"] = ManifestError("/models/broken: model.onnx sha256 does not match")
    slot = make_slot(folders, InlineRunner(), clock, registry)
    folders.link = "broken"
    with caplog.at_level(logging.ERROR):
        clock.advance(INTERVAL_S)
        assert slot.poll(clock.monotonic()) is None
    assert slot.current.info["name"] == "old"
    assert metric(registry, "sentistream_model_reload_failures_total") == 1
    assert metric(registry, "sentistream_model_reloads_total") == 0
    assert "refusing the model in /models/current: ManifestError: /models/broken:" in caplog.text
    assert "sha256 does not match; still serving old 1 (sha256 sha-old…)" in caplog.text
    for _ in range(5):  # the same manifest is not tried again on the timer
        clock.advance(INTERVAL_S)
        slot.poll(clock.monotonic())
    assert len(folders.loads) == 1
    assert metric(registry, "sentistream_model_reload_failures_total") == 1
    slot.request_check()  # an operator's SIGHUP tries it again
    slot.poll(clock.monotonic())
    assert len(folders.loads) == 2
    assert metric(registry, "sentistream_model_reload_failures_total") == 2


def test_after_a_refusal_a_fixed_model_is_taken(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    folders = LinkedFolders()
    folders.models["broken"] = ManifestError("bad hashes")
    folders.models["fixed"] = served("fixed")
    slot = make_slot(folders, InlineRunner(), clock, registry)
    folders.link = "broken"
    clock.advance(INTERVAL_S)
    slot.poll(clock.monotonic())
    folders.link = "fixed"
    clock.advance(INTERVAL_S)
    swapped = slot.poll(clock.monotonic())
    assert swapped is not None
    assert swapped.info["name"] == "fixed"
    assert metric(registry, "sentistream_model_reload_failures_total") == 1
    assert metric(registry, "sentistream_model_reloads_total") == 1


def test_a_missing_folder_is_refused_and_the_old_model_serves(
    clock: FakeClock, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    folders = LinkedFolders()
    slot = make_slot(folders, InlineRunner(), clock, registry)
    folders.link = "gone"
    clock.advance(INTERVAL_S)
    with caplog.at_level(logging.ERROR):
        assert slot.poll(clock.monotonic()) is None
    assert "cannot read the manifest" in caplog.text
    assert metric(registry, "sentistream_model_reload_failures_total") == 1
    assert folders.loads == []


@pytest.mark.parametrize(
    ("classifier", "reason"),
    [
        (ThreeLabels(), "labels ['negative', 'neutral', 'positive'] differ"),
        (BadOutput(lambda n: np.full((n, 2), np.nan, np.float32)), "not all in [0, 1]"),
        (BadOutput(lambda n: np.full((n, 2), 0.2, np.float32)), "sum to 0.4000, not 1"),
        (BadOutput(lambda n: np.full((n, 3), 0.25, np.float32)), "output shape (8, 3)"),
        (BadOutput(lambda n: np.full((max(1, n - 1), 2), 0.5, np.float32)), "shape (7, 2)"),
        (FakeClassifier(always_fail=True), "InferenceError: fake model always fails"),
    ],
    ids=["labels", "nan", "sum", "columns", "rows", "inference"],
)
def test_a_model_failing_warm_up_is_refused(
    clock: FakeClock,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
    classifier: FakeClassifier,
    reason: str,
) -> None:
    folders = LinkedFolders()
    folders.models["new"] = served("new", classifier)
    slot = make_slot(folders, InlineRunner(), clock, registry)
    folders.link = "new"
    slot.request_check()
    with caplog.at_level(logging.ERROR):
        assert slot.poll(clock.monotonic()) is None
    assert reason in caplog.text
    assert slot.current.info["name"] == "old"
    assert metric(registry, "sentistream_model_reload_failures_total") == 1


def test_warm_up_refuses_a_model_no_text_reaches() -> None:
    class Mute(FakeClassifier):
        def encode(self, text: str) -> list[int]:
            return []

    with pytest.raises(ModelRefused, match="no warm-up text"):
        warm_up(Mute())


def test_a_symlink_is_followed_once_and_the_real_folder_is_loaded(
    tmp_path: Path, clock: FakeClock, registry: CollectorRegistry
) -> None:
    for name, version in (("a", "1"), ("b", "2")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"version": version}))
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "a")
    loads: list[Path] = []

    def load(folder: Path) -> ServedModel:
        loads.append(folder)
        return ServedModel(
            FakeClassifier(), {"name": folder.name}, manifest_fingerprint(folder), folder
        )

    slot = ModelSlot(
        load(link.resolve()),
        WorkerMetrics.create(registry),
        folder=link,
        load=load,
        runner=InlineRunner(),
        interval_s=INTERVAL_S,
        now=clock.monotonic(),
    )
    clock.advance(INTERVAL_S)
    assert slot.poll(clock.monotonic()) is None  # same manifest: nothing loaded
    assert loads == [tmp_path / "a"]
    tmp_link = tmp_path / "current.tmp"
    tmp_link.symlink_to(tmp_path / "b")
    tmp_link.replace(link)  # the atomic switch operators do
    clock.advance(INTERVAL_S)
    swapped = slot.poll(clock.monotonic())
    assert swapped is not None
    assert loads[-1] == tmp_path / "b"  # the folder, not the link
    assert swapped.folder == tmp_path / "b"


def test_the_thread_runner_works_off_the_callers_thread() -> None:
    runner = ThreadRunner()
    try:
        assert runner.submit(threading.get_ident).result(timeout=10) != threading.get_ident()
    finally:
        runner.close()


# -- the slot in the loop -------------------------------------------------------------------------


def make_worker(
    folders: Folders, runner: Any, clock: FakeClock, registry: CollectorRegistry, source: FakeSource
) -> tuple[Worker, FakeSink, ModelSlot]:
    slot = make_slot(folders, runner, clock, registry)
    sink = FakeSink(auto_ack=True)
    worker = Worker(
        source,
        sink,
        slot.current.classifier,
        slot.metrics,
        policy=BatchPolicy(max_batch_size=4, max_wait_s=0.5, commit_interval_s=0.5),
        topics=Topics(output=OUT, dead_letter=DLQ),
        model_info=slot.current.info,
        clock=clock,
        model_slot=slot,
    )
    return worker, sink, slot


def tweets(partition: int, start: int, count: int) -> list[FakeRecord]:
    return [
        FakeRecord(
            IN, partition, offset, -1, None, f"tweet {offset} {'x ' * (offset % 2)}".encode()
        )
        for offset in range(start, start + count)
    ]


def outputs(sink: FakeSink) -> list[dict[str, Any]]:
    return [json.loads(s.value or b"null") for s in sink.to(OUT)]


def test_the_loop_keeps_serving_the_old_model_while_the_new_one_loads(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    folders = LinkedFolders()
    new = NewClassifier()
    folders.models["new"] = served("new", new)
    runner = ManualRunner()
    source = FakeSource()
    worker, sink, _ = make_worker(folders, runner, clock, registry, source)
    folders.link = "new"
    clock.advance(INTERVAL_S)
    for start in (0, 4, 8):  # the check is pending over three batches
        source.feed(*tweets(0, start, 4))
        worker.step()
    assert [o["model"]["name"] for o in outputs(sink)] == ["old"] * 12
    assert new.calls == []
    runner.run_all()
    warm_up_calls = len(new.calls)
    source.feed(*tweets(0, 12, 4))
    worker.step()
    assert [o["model"]["name"] for o in outputs(sink)] == ["old"] * 12 + ["new"] * 4
    assert len(new.calls) == warm_up_calls + 1
    # the new model's opinions, not only its name
    assert [o["probabilities"]["negative"] for o in outputs(sink)[12:]] == pytest.approx(
        [0.9, 0.3, 0.9, 0.3]
    )


def test_a_batch_is_never_split_across_models_and_each_partition_switches_at_one_offset(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    folders = LinkedFolders()
    folders.models["new"] = served("new", NewClassifier())
    runner = ManualRunner()
    source = FakeSource()
    worker, sink, _ = make_worker(folders, runner, clock, registry, source)
    folders.link = "new"
    source.feed(*tweets(0, 0, 3), *tweets(1, 0, 3))
    worker.step()  # 4 of 6 records: one full batch
    clock.advance(INTERVAL_S)
    worker.step()  # the check starts; 2 records open a batch that waits for more
    runner.run_all()
    source.feed(*tweets(0, 3, 2))
    worker.step()  # the swap comes first, then the open batch closes under the new model
    clock.advance(1.0)
    worker.step()
    worker.drain(1.0)
    by_partition: dict[int, list[tuple[int, str]]] = {}
    for out in outputs(sink):
        by_partition.setdefault(out["source"]["partition"], []).append(
            (out["source"]["offset"], out["model"]["name"])
        )
    for partition, labelled in by_partition.items():
        offsets = [offset for offset, _ in labelled]
        assert offsets == sorted(offsets) == list(range(len(offsets))), partition
        models = [name for _, name in labelled]
        switch = models.index("new") if "new" in models else len(models)
        assert models == ["old"] * switch + ["new"] * (len(models) - switch), partition
    assert sum(len(v) for v in by_partition.values()) == 8
    assert {name for labelled in by_partition.values() for _, name in labelled} == {"old", "new"}


def test_a_refused_model_leaves_the_loop_serving_the_old_one(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    folders = LinkedFolders()
    folders.models["broken"] = ManifestError("bad hashes")
    source = FakeSource()
    worker, sink, _ = make_worker(folders, InlineRunner(), clock, registry, source)
    folders.link = "broken"
    clock.advance(INTERVAL_S)
    for start in (0, 4):
        source.feed(*tweets(0, start, 4))
        worker.step()
    assert [o["model"]["name"] for o in outputs(sink)] == ["old"] * 8
    assert metric(registry, "sentistream_model_reload_failures_total") == 1


def test_the_shipped_models_pass_warm_up() -> None:
    from sentistream.worker.app.classifier import load_served
    from sentistream.worker.settings import WorkerSettings

    folders = [REPO_ROOT / "models" / n for n in ("sentistream-lstm", "sentistream-lstm-int8")]
    present = [f for f in folders if (f / "manifest.json").is_file()]
    if not present:
        pytest.skip("no model folder under models/ (run `make train`)")
    for folder in present:
        model = load_served(folder, WorkerSettings(model_dir=folder))
        warm_up(model.classifier)
        assert model.fingerprint == manifest_fingerprint(folder)
        assert (
            model.info["sha256"]
            == json.loads((folder / "manifest.json").read_text())["onnx"]["sha256"]
        )


def test_sighup_asks_the_slot_for_a_check(clock: FakeClock, registry: CollectorRegistry) -> None:
    from sentistream.worker.app.lifecycle import Lifecycle
    from sentistream.worker.settings import WorkerSettings

    process = Lifecycle(WorkerSettings())
    process.request_reload()  # before the model is loaded: nothing to do
    folders = LinkedFolders()
    folders.models["new"] = served("new")
    process.models = make_slot(folders, InlineRunner(), clock, registry)
    folders.link = "new"
    process.request_reload()
    swapped = process.models.poll(clock.monotonic())
    assert swapped is not None
    assert swapped.info["name"] == "new"
