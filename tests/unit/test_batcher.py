"""Adaptive micro-batching: the pure policy, then the loop driving it (fake clock, no sleep)."""

from __future__ import annotations

import pytest

from sentistream.worker.core.batcher import BatchPolicy, MicroBatcher
from tests.unit.fakes import FakeRecord, ManualRunner
from tests.unit.test_worker_loop import make, rec, texts


def records(n: int, start: int = 0) -> list[FakeRecord]:
    return [FakeRecord("t", 0, start + i, 0, None, b"x") for i in range(n)]


def batcher(*, adaptive: bool = True, size: int = 8, wait_s: float = 0.5) -> MicroBatcher:
    return MicroBatcher(BatchPolicy(max_batch_size=size, max_wait_s=wait_s, adaptive=adaptive))


# -- the policy alone -------------------------------------------------------------------------


def test_a_poll_that_brings_fewer_than_asked_closes_the_batch_at_once():
    b = batcher()
    b.add(records(3), now=10.0)
    b.polled(asked=8)
    assert b.ready(now=10.0)  # no waiting out max_wait
    assert [r.offset for r in b.take()] == [0, 1, 2]
    assert not b.ready(now=10.0)


def test_a_poll_that_brings_all_it_asked_for_keeps_the_batch_open_until_full():
    b = batcher(size=8)
    b.add(records(3), now=10.0)
    b.polled(asked=3)  # e.g. flow control let it ask for 3 only: more may be waiting
    assert not b.ready(now=10.0)
    assert b.wait_s(now=10.1) == pytest.approx(0.4)
    b.add(records(5, start=3), now=10.1)
    b.polled(asked=5)
    assert b.ready(now=10.1)  # full
    assert len(b.take()) == 8


def test_under_a_backlog_every_batch_is_full():
    b = batcher(size=4)
    sizes = []
    for n in range(5):
        b.add(records(b.room, start=4 * n), now=float(n))
        b.polled(asked=4)
        assert b.ready(now=float(n))
        sizes.append(len(b.take()))
    assert sizes == [4, 4, 4, 4, 4]


def test_max_wait_still_bounds_an_open_batch():
    b = batcher(size=8, wait_s=0.5)
    b.add(records(2), now=10.0)
    b.polled(asked=2)
    assert not b.ready(now=10.49)
    assert b.ready(now=10.5)


def test_an_empty_poll_closes_a_batch_left_open():
    b = batcher(size=8)
    b.add(records(2), now=10.0)
    b.polled(asked=2)
    assert not b.ready(now=10.0)
    b.polled(asked=6)  # nothing came
    assert b.ready(now=10.01)


def test_without_adaptive_a_drained_poll_does_not_close_the_batch():
    b = batcher(adaptive=False, size=8, wait_s=0.5)
    b.add(records(3), now=10.0)
    b.polled(asked=8)
    assert not b.ready(now=10.2)
    assert b.ready(now=10.5)


def test_only_the_last_poll_counts():
    b = batcher(size=8)
    b.add(records(1), now=10.0)
    b.polled(asked=1)  # full poll: not drained
    b.add(records(1, start=1), now=10.0)
    b.polled(asked=7)  # drained
    assert b.ready(now=10.0)
    b.take()
    b.add(records(2, start=2), now=10.1)  # added, poll not over yet
    assert not b.ready(now=10.1)


def test_a_drained_batch_stays_open_while_the_model_is_busy_until_it_is_free_or_due():
    b = batcher(wait_s=0.5)
    b.add(records(2), now=10.0)
    b.polled(asked=8)  # drained
    assert not b.ready(now=10.0, model_busy=True)
    b.add(records(3, start=2), now=10.1)  # what the next poll brought meanwhile
    b.polled(asked=6)
    assert not b.ready(now=10.1, model_busy=True)
    assert b.ready(now=10.1, model_busy=False)  # the model is free: it goes
    assert b.ready(now=10.5, model_busy=True)  # max_wait bounds the hold
    assert len(b.take()) == 5


def test_a_full_batch_goes_even_while_the_model_is_busy():
    b = batcher(size=4)
    b.add(records(4), now=10.0)
    b.polled(asked=4)
    assert b.ready(now=10.0, model_busy=True)


# -- the loop with an adaptive policy ---------------------------------------------------------


def test_at_low_load_a_tweet_is_classified_by_the_step_that_polled_it():
    h = make(batch=10, wait_s=0.5, adaptive=True)
    h.worker.step()  # idle
    assert h.classifier.calls == []

    h.source.feed(*texts(3))
    h.worker.step()  # 3 < 10 asked: drained, classified now, not 0.5 s later
    assert [len(call) for call in h.classifier.calls] == [3]
    assert len(h.sink.sent) == 3
    assert h.source.polls[-1] == (0.1, 10)  # the poll waited only the idle timeout


def test_under_a_backlog_the_loop_fills_each_batch_to_the_maximum():
    h = make(texts(10), batch=4, adaptive=True)
    for _ in range(3):
        h.worker.step()
    assert [len(call) for call in h.classifier.calls] == [4, 4, 2]


def test_the_same_backlog_without_adaptive_holds_the_remainder_until_max_wait():
    h = make(texts(10), batch=4, wait_s=0.5, adaptive=False)
    for _ in range(3):
        h.worker.step()
    assert [len(call) for call in h.classifier.calls] == [4, 4]
    h.clock.advance(0.5)
    h.worker.step()
    assert [len(call) for call in h.classifier.calls] == [4, 4, 2]


def test_under_steady_load_the_batch_grows_while_the_model_runs_and_goes_when_it_is_free():
    runner = ManualRunner(finish_on_wait=False)
    h = make(batch=10, wait_s=0.5, adaptive=True, pipeline_depth=2, runner=runner)
    h.source.feed(*texts(2))
    h.worker.step()  # drained, the model idle: A goes at once
    assert runner.pending == 1
    for n in range(3):  # tweets keep arriving while A is inferred
        h.source.feed(*[rec(10 + 2 * n + i, f"tweet {n} {i}") for i in range(2)])
        h.clock.advance(0.01)
        h.worker.step()
    assert runner.pending == 1  # B is held open, growing
    assert len(h.worker.batcher) == 6
    runner.complete(0)  # A is back
    h.worker.step()  # A published; B goes now, before the poll
    assert len(h.sink.sent) == 2
    assert runner.pending == 1
    assert len(h.worker.batcher) == 0
    runner.complete_all()
    h.worker.step()
    assert [len(call) for call in h.classifier.calls] == [2, 6]


def test_the_production_policy_is_adaptive():
    assert BatchPolicy(max_batch_size=256, max_wait_s=0.01).adaptive
