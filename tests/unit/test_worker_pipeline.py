"""The pipelined worker: inference on a thread of its own, results published in poll order.

The inference thread is a :class:`ManualRunner` the test drives (jobs finish when the test says
so, in any order), or, where noted, a real :class:`ThreadRunner` whose futures the loop waits
on; nothing sleeps.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentistream.worker.app.pipelining import (
    PIPELINE_SWITCH_INTERVAL_S,
    configure_pipeline,
    effective_pipeline_depth,
)
from sentistream.worker.core.loop import default_max_in_flight
from sentistream.worker.core.model_slot import ServedModel
from sentistream.worker.core.ports import ModelBroken
from sentistream.worker.core.runners import InlineRunner, ThreadRunner
from sentistream.worker.settings import WorkerSettings
from tests.unit.fakes import FakeClassifier, FakeRecord, ManualRunner
from tests.unit.test_worker_loop import (
    DLQ,
    MODEL_INFO,
    OUT,
    TP0,
    TP1,
    Harness,
    make,
    rec,
    texts,
)


def _sources(h: Harness) -> list[tuple[int, int]]:
    """(partition, offset) of each label sent, in send order."""
    return [(b["source"]["partition"], b["source"]["offset"]) for b in h.labels_out()]


def _interleaved(n: int) -> list[FakeRecord]:
    """``n`` records on each of two partitions."""
    return [r for i in range(n) for r in (rec(i, f"tweet {i}"), rec(i, f"so {i} x", partition=1))]


# -- order ------------------------------------------------------------------------------------


def test_batches_are_published_in_poll_order_when_inference_finishes_out_of_order():
    runner = ManualRunner(finish_on_wait=False)
    h = make(_interleaved(3), batch=2, pipeline_depth=3, runner=runner, auto_ack=True)
    for _ in range(3):
        h.worker.step()
    assert runner.pending == 3
    assert h.sink.sent == []

    runner.complete(2)  # the last batch first: it waits for the two before it
    h.worker.step()
    assert h.sink.sent == []
    runner.complete(0)
    h.worker.step()
    assert _sources(h) == [(0, 0), (0, 1)]  # the fake consumer hands partition 0 out first
    runner.complete(0)
    h.worker.step()
    assert _sources(h) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    h.clock.advance(0.5)
    h.worker.step()
    assert h.source.commits == [{TP0: 3, TP1: 3}]


def test_the_next_batch_is_polled_and_encoded_while_the_model_runs():
    runner = ManualRunner(finish_on_wait=False)
    h = make(texts(4), batch=2, poll_timeout_s=0.1, pipeline_depth=2, runner=runner)
    h.worker.step()
    h.worker.step()  # batch A with the model: B is polled and submitted meanwhile
    assert h.source.polls == [(0.1, 2), (0.1, 2)]
    assert runner.pending == 2
    assert h.classifier.calls == []  # nothing inferred yet: the test's "thread" has not run
    assert runner.waits == []  # the consumer had records: the loop did not wait for the model


def test_once_the_consumer_is_drained_the_loop_waits_for_the_model_not_in_an_idle_poll():
    runner = ManualRunner(finish_on_wait=False)
    h = make(texts(3), batch=2, wait_s=0.5, poll_timeout_s=0.1, pipeline_depth=2, runner=runner)
    h.worker.step()  # A submitted
    h.worker.step()  # one record, fewer than asked: the consumer is drained
    assert h.source.polls == [(0.1, 2), (0.1, 2)]
    h.clock.advance(0.2)
    h.worker.step()  # the model first, for at most what is left of the open batch's wait
    assert runner.waits == [pytest.approx(0.3)]
    assert h.sink.sent == []

    runner.complete_all()
    h.clock.advance(0.3)
    h.worker.step()  # A is back and published; the open batch is due and goes before the poll
    assert len(h.sink.sent) == 2
    assert runner.pending == 1
    assert h.source.polls[-1] == (0.1, 2)
    runner.finish_on_wait = True
    h.worker.step()  # waits for B, publishes it, then polls idle
    assert len(h.sink.sent) == 3
    assert h.source.polls[-1] == (0.1, 2)


def test_a_full_pipeline_waits_for_the_oldest_batch_and_publishes_it_before_taking_another():
    runner = ManualRunner()
    h = make(texts(6), batch=2, pipeline_depth=2, runner=runner)
    h.worker.step()
    h.worker.step()
    assert runner.pending == 2
    assert h.sink.sent == []
    h.worker.step()  # a third batch is ready: the first must go out first
    assert runner.waits == [None]
    assert _sources(h) == [(0, 0), (0, 1)]
    assert runner.pending == 2
    assert len(h.worker.stage) == 2


# -- flow control -----------------------------------------------------------------------------


def test_records_with_the_model_count_as_in_flight_and_pause_fetching():
    runner = ManualRunner(finish_on_wait=False)
    h = make(texts(8), batch=2, pipeline_depth=2, runner=runner, max_in_flight=4)
    h.worker.step()
    assert h.worker.in_flight == 2
    assert not h.worker.paused
    h.worker.step()
    assert h.worker.in_flight == 4
    assert h.worker.paused
    assert h.source.paused == {TP0}
    assert h.metric("sentistream_in_flight_records") == 4
    assert h.worker.state.in_flight == 4

    runner.complete_all()
    h.worker.step()  # published: in flight until acknowledged
    assert h.worker.in_flight == 4
    h.sink.ack_all()
    h.worker.step()
    assert h.worker.in_flight == 0
    assert not h.worker.paused


def test_the_default_in_flight_limit_leaves_room_for_the_batches_with_the_model():
    assert default_max_in_flight(256) == 4 * 256
    assert default_max_in_flight(256, 0) == 4 * 256
    assert default_max_in_flight(256, 2) == 5 * 256


# -- shutdown ---------------------------------------------------------------------------------


def test_drain_finishes_the_batches_with_the_model_and_the_one_in_hand_then_commits():
    runner = ManualRunner()
    h = make(texts(5), batch=2, wait_s=5.0, pipeline_depth=2, runner=runner)
    h.worker.step()
    h.worker.step()
    h.worker.step()  # one record in hand, two batches with the model
    assert (len(h.worker.batcher), runner.pending) == (1, 2)
    h.worker.stop()

    report = h.worker.drain(7.0)
    assert report.clean
    assert [offset for _, offset in _sources(h)] == [0, 1, 2, 3, 4]
    assert all(w is not None and w > 0 for w in runner.waits)
    assert h.source.commits == [{TP0: 5}]
    assert h.worker.in_flight == 0


def test_drain_reports_records_the_model_did_not_finish_in_time_and_does_not_commit_them():
    runner = ManualRunner(finish_on_wait=False)
    h = make(texts(4), batch=2, pipeline_depth=2, runner=runner)
    h.worker.step()
    h.worker.step()
    runner.complete(0)  # the first batch is back; the second never comes
    h.worker.stop()

    report = h.worker.drain(1.0)
    assert not report.clean
    assert report.undelivered == 2
    assert report.committed
    assert "still with the model" in report.detail
    assert h.source.commits == [{TP0: 2}]


def test_run_with_a_real_inference_thread_ends_with_everything_labelled_and_committed():
    from tests.unit.test_worker_loop import _StopWhenEmpty

    source = _StopWhenEmpty(_interleaved(7))
    h = make(batch=3, pipeline_depth=2, source=source, runner=ThreadRunner())
    source.worker = h.worker

    assert h.worker.run(drain_timeout_s=30.0).clean
    labelled = _sources(h)
    assert sorted(labelled) == sorted((p, o) for o in range(7) for p in (0, 1))
    for partition in (0, 1):
        assert [o for p, o in labelled if p == partition] == list(range(7))
    assert source.committed() == {TP0: 7, TP1: 7}


# -- model swap -------------------------------------------------------------------------------


class _OtherVocabulary(FakeClassifier):
    """Another model: other token ids, and every tweet positive."""

    def encode(self, text: str) -> list[int]:
        return [-self.token_id(word) for word in text.split()] + [0]


def test_a_model_swapped_in_mid_pipeline_does_not_touch_the_batches_encoded_before_it():
    runner = ManualRunner(finish_on_wait=False)
    h = make(texts(4), batch=2, pipeline_depth=2, runner=runner, auto_ack=True)
    h.worker.step()  # batch 1, encoded with model A, with the model
    new = _OtherVocabulary()
    new_info = {"name": "model-b", "sha256": "bbb"}
    h.worker.use_model(ServedModel(new, new_info, "fingerprint-b", Path("b")))
    h.worker.step()  # batch 2, encoded with model B
    runner.complete_all()
    h.worker.step()

    assert h.classifier.calls == [
        [
            [FakeClassifier.token_id(w) for w in ["tweet", "number", "0"]],
            [FakeClassifier.token_id(w) for w in ["tweet", "number", "1"]],
        ]
    ]
    assert len(new.calls) == 1
    assert all(row[-1] == 0 for row in new.calls[0])
    assert [b["model"] for b in h.labels_out()] == [MODEL_INFO] * 2 + [new_info] * 2


# -- errors -----------------------------------------------------------------------------------


def test_an_inference_error_on_the_thread_dead_letters_only_the_record_at_fault():
    poison = FakeClassifier.token_id("poison")
    classifier = FakeClassifier(fail_on=[poison])
    records = [rec(0, "good day"), rec(1, "this is poison"), rec(2, "nice"), rec(3, "ok then")]
    h = make(
        records,
        batch=4,
        classifier=classifier,
        auto_ack=True,
        pipeline_depth=2,
        runner=ThreadRunner(),
    )
    h.worker.step()
    while len(h.sink.sent) < 4:  # each step waits (on the future) for the thread
        h.worker.step()

    assert [s.topic for s in h.sink.sent] == [OUT, DLQ, OUT, OUT]
    assert h.sink.to(DLQ)[0].header("sentistream.errors.reason") == b"inference_error"
    assert h.metric("sentistream_records_dead_lettered_total", reason="inference_error") == 1
    assert len(classifier.calls[0]) == 4  # the whole batch first, then halves
    h.clock.advance(0.5)
    h.worker.step()
    assert h.source.commits == [{TP0: 4}]


def test_a_broken_model_on_the_thread_still_stops_the_worker_and_nothing_is_committed():
    runner = ManualRunner()
    h = make(
        texts(2),
        batch=2,
        classifier=FakeClassifier(always_fail=True),
        auto_ack=True,
        pipeline_depth=2,
        runner=runner,
    )
    h.worker.step()
    h.worker.step()  # the consumer is drained
    with pytest.raises(ModelBroken):
        h.worker.step()  # waits for the model; its failure comes back to the loop's thread
    assert h.sink.sent == []
    assert h.source.commits == []


def test_whatever_else_the_inference_raises_comes_back_to_the_loop_thread():
    class Crashing(FakeClassifier):
        def predict_ids(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
            raise MemoryError("out of memory (fake)")

    h = make(texts(2), batch=2, classifier=Crashing(), pipeline_depth=2, runner=ManualRunner())
    h.worker.step()
    h.worker.step()
    with pytest.raises(MemoryError):
        h.worker.step()


# -- rebalance --------------------------------------------------------------------------------


def test_a_batch_with_the_model_when_its_partition_is_revoked_is_published_not_committed():
    runner = ManualRunner(finish_on_wait=False)
    h = make(_interleaved(1), batch=2, pipeline_depth=2, runner=runner, auto_ack=True)
    h.worker.step()
    h.source.assigned = {TP1}  # partition 0 moved to another worker
    runner.complete_all()
    h.clock.advance(0.5)
    h.worker.step()
    assert _sources(h) == [(0, 0), (1, 0)]  # at-least-once: the new owner may label it again
    assert h.source.commits == [{TP1: 1}]
    assert h.metric("sentistream_commit_failures_total", reason="rebalance") == 1


# -- the synchronous path and the settings --------------------------------------------------


@pytest.mark.parametrize("depth", [0, 1])
def test_depth_zero_or_one_runs_inference_inline_with_the_same_polls_and_outputs(depth: int):
    def run(worker_depth: int) -> Harness:
        h = make(_interleaved(5), batch=3, pipeline_depth=worker_depth)
        for _ in range(5):
            h.worker.step()
        return h

    plain, other = run(1), run(depth)
    assert isinstance(other.worker.stage.runner, InlineRunner)
    assert other.source.polls == plain.source.polls
    assert [(s.topic, s.value) for s in other.sink.sent] == [
        (s.topic, s.value) for s in plain.sink.sent
    ]


def test_exactly_once_runs_without_pipelining():
    assert effective_pipeline_depth(WorkerSettings(pipeline_depth=3)) == 3
    assert effective_pipeline_depth(WorkerSettings(pipeline_depth=0)) == 0
    exactly_once = WorkerSettings(pipeline_depth=3, processing_guarantee="exactly-once")
    assert effective_pipeline_depth(exactly_once) == 1


@pytest.mark.parametrize(
    ("worker_settings", "depth", "switch_s"),
    [
        (WorkerSettings(pipeline_depth=2), 2, PIPELINE_SWITCH_INTERVAL_S),
        (WorkerSettings(pipeline_depth=1), 1, None),
        (WorkerSettings(pipeline_depth=3, processing_guarantee="exactly-once"), 1, None),
    ],
)
def test_only_a_pipelined_worker_hands_the_gil_over_every_half_millisecond(
    worker_settings: WorkerSettings, depth: int, switch_s: float | None
) -> None:
    """Without the finer switch interval the two threads barely overlap (BENCHMARKS.md,
    Pipelining); a synchronous worker keeps Python's default."""
    before = sys.getswitchinterval()
    try:
        assert configure_pipeline(worker_settings) == depth
        assert sys.getswitchinterval() == (before if switch_s is None else switch_s)
    finally:
        sys.setswitchinterval(before)


def test_a_worker_with_a_pipeline_starts_its_own_thread_and_drain_ends_it():
    h = make(texts(2), batch=2, pipeline_depth=2)
    runner = h.worker.stage.runner
    assert isinstance(runner, ThreadRunner)
    h.worker.step()
    h.worker.stop()
    assert h.worker.drain(10.0).clean
    assert [offset for _, offset in _sources(h)] == [0, 1]
    with pytest.raises(RuntimeError):
        runner.submit(lambda: None)  # shut down


# -- property: any interleaving -------------------------------------------------------------

_ACTIONS = st.lists(
    st.sampled_from(["step", "step", "step", "complete", "complete_last", "ack", "tick", "feed"]),
    max_size=60,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=_ACTIONS,
    depth=st.integers(2, 4),
    batch=st.integers(1, 4),
    max_in_flight=st.sampled_from([None, 3, 6]),
)
def test_any_interleaving_keeps_partition_order_and_commits_only_what_was_acknowledged(
    actions: list[str], depth: int, batch: int, max_in_flight: int | None
):
    runner = ManualRunner(finish_on_wait=False)
    h = make(
        _interleaved(4),
        batch=batch,
        pipeline_depth=depth,
        runner=runner,
        max_in_flight=max_in_flight,
        adaptive=True,
    )
    fed = 4
    for action in actions:
        if action == "step":
            h.worker.step()
        elif action == "complete" and runner.pending:
            runner.complete(0)
        elif action == "complete_last" and runner.pending:
            runner.complete(runner.pending - 1)
        elif action == "ack" and h.sink.pending():
            h.sink.ack(h.sink.sent.index(h.sink.pending()[0]))
        elif action == "tick":
            h.clock.advance(0.3)
        elif action == "feed":
            h.source.feed(rec(fed, f"more {fed}"), rec(fed, f"and {fed} more", partition=1))
            fed += 1
        _check(h, depth)

    runner.finish_on_wait = True  # then everything is let through to the end
    h.sink.auto_ack = True
    h.sink.ack_all()
    for _ in range(100):
        if not (h.source.queued() or len(h.worker.batcher) or len(h.worker.stage)):
            break
        h.worker.step()
        _check(h, depth)
    h.worker.stop()
    assert h.worker.drain(5.0).clean
    _check(h, depth)
    assert sorted(_sources(h)) == sorted((p, o) for o in range(fed) for p in (0, 1))
    assert h.source.committed() == {TP0: fed, TP1: fed}


def _check(h: Harness, depth: int) -> None:
    sent = _sources(h)
    for partition in (0, 1):
        offsets = [o for p, o in sent if p == partition]
        assert offsets == list(range(len(offsets))), "outputs keep each partition's order"
    acked = {
        (body["source"]["partition"], body["source"]["offset"])
        for s in h.sink.to(OUT)
        if s.delivery.done() and s.delivery.exception() is None
        for body in [json.loads(s.value or b"null")]
    }
    for commit in h.source.commits:
        for tp, offset in commit.items():
            assert all((tp.partition, o) in acked for o in range(offset)), "commit ≤ acknowledged"
    assert len(h.worker.stage) <= depth
    assert h.worker.in_flight == (
        len(h.worker.batcher) + h.worker.stage.records + h.worker.guarantee.in_flight
    )
