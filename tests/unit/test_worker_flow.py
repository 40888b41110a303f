"""Backpressure: a bounded number of records in flight, pause above it, resume below half."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentistream.worker.core.flow import FlowControl, FlowDecision
from tests.unit.test_worker_loop import TP0, TP1, make, texts


def test_flow_control_pauses_at_high_and_resumes_at_low():
    flow = FlowControl.for_limit(100)
    assert (flow.high, flow.low) == (100, 50)
    assert flow.decide(99, paused=False) is FlowDecision.KEEP
    assert flow.decide(100, paused=False) is FlowDecision.PAUSE
    assert flow.decide(51, paused=True) is FlowDecision.KEEP
    assert flow.decide(50, paused=True) is FlowDecision.RESUME
    assert flow.decide(0, paused=False) is FlowDecision.KEEP
    assert flow.room(70) == 30
    assert flow.room(130) == 0


def test_flow_control_refuses_a_low_mark_not_under_the_high_one():
    with pytest.raises(ValueError, match="low < high"):
        FlowControl(high=10, low=10)


def test_a_stalled_output_pauses_fetching_and_keeps_polling_then_resumes():
    h = make(texts(40), batch=4, max_in_flight=8)
    h.worker.step()  # batch 1 out: 4 in flight
    h.worker.step()  # batch 2 out: 8 in flight → pause
    assert h.worker.in_flight == 8
    assert h.source.paused == {TP0}
    assert h.metric("sentistream_paused") == 1
    assert h.metric("sentistream_in_flight_records") == 8
    assert h.worker.state.paused

    polls = len(h.source.polls)
    for _ in range(5):  # the output stays stalled: polls go on (group membership), no records
        h.clock.advance(0.1)
        h.worker.step()
    assert len(h.source.polls) == polls + 5
    assert len(h.sink.sent) == 8
    assert h.source.queued() == 32

    for index in range(4):  # half acknowledged: 4 in flight ≤ low → resume
        h.sink.ack(index)
    h.clock.advance(1.0)
    h.worker.step()
    assert h.source.paused == set()
    assert h.metric("sentistream_paused") == 0

    h.sink.auto_ack = True
    h.sink.ack_all()
    for _ in range(20):
        h.clock.advance(0.5)
        h.worker.step()
    assert h.source.committed() == {TP0: 40}


def test_a_poll_never_asks_for_more_than_the_room_left_under_the_limit():
    h = make(texts(20), batch=8, wait_s=0.0, max_in_flight=10)
    h.worker.step()  # takes 8
    assert h.source.polls[-1][1] == 8
    h.worker.step()  # room: min(batch 8, 10 - 8 in flight) = 2
    assert h.source.polls[-1][1] == 2
    assert h.worker.in_flight == 10


def test_partitions_assigned_while_paused_are_paused_too():
    h = make(texts(8), batch=4, max_in_flight=4)
    h.source.assigned = {TP0}
    h.worker.step()
    assert h.source.paused == {TP0}
    h.source.feed(*texts(3, partition=1))
    h.source.assigned = {TP0, TP1}  # a rebalance gave this worker another partition
    h.worker.step()
    assert h.source.paused == {TP0, TP1}
    assert len(h.sink.sent) == 4


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(1, 20),
    batch=st.integers(1, 8),
    acks=st.lists(st.integers(0, 6), min_size=1, max_size=40),
)
def test_records_in_flight_never_pass_the_limit(limit: int, batch: int, acks: list[int]):
    h = make(texts(60) + texts(60, partition=1), batch=batch, wait_s=0.2, max_in_flight=limit)
    peak = 0
    for ack in acks:
        h.worker.step()
        peak = max(peak, h.worker.in_flight)
        assert h.metric("sentistream_in_flight_records") == h.worker.in_flight
        for sent in h.sink.pending()[:ack]:
            h.sink.ack(h.sink.sent.index(sent))
        h.clock.advance(0.1)
    assert peak <= limit
    h.sink.auto_ack = True
    h.sink.ack_all()
    for _ in range(400):
        if h.source.queued() == 0 and h.worker.in_flight == 0:
            break
        h.worker.step()
        h.clock.advance(0.2)
    h.clock.advance(1.0)
    h.worker.step()
    assert h.source.committed() == {TP0: 60, TP1: 60}  # and nothing stays stuck
