"""Liveness is progress of acknowledged deliveries, not loop steps: a worker whose oldest
produced batch waits too long for Kafka's acknowledgement fails /healthz, and a metric shows
that age."""

from __future__ import annotations

import time
from types import SimpleNamespace

from sentistream.worker.app.lifecycle import Lifecycle
from sentistream.worker.core.loop import WorkerState
from sentistream.worker.settings import WorkerSettings
from tests.unit.test_worker_loop import make, texts

AGE = "sentistream_oldest_unacked_age_seconds"


def test_the_age_of_the_oldest_unacknowledged_batch_is_a_metric_and_in_the_snapshot():
    h = make(texts(4), batch=2)
    h.worker.step()  # one batch of 2 produced, not acknowledged
    produced_at = h.clock.monotonic()
    assert h.metric(AGE) == 0.0
    h.clock.advance(45)
    h.worker.step()  # the second batch, also unacknowledged
    h.clock.advance(20)
    h.worker.step()
    assert h.metric(AGE) == 65.0  # the oldest one counts
    assert h.worker.state.oldest_unacked_at == produced_at
    h.sink.ack_all()
    h.worker.step()
    assert h.metric(AGE) == 0.0
    assert h.worker.state.oldest_unacked_at is None


def test_the_loop_stepping_is_not_enough_healthz_fails_on_old_unacknowledged_records():
    process = Lifecycle(WorkerSettings(health_stall_s=30, max_unacked_age_s=60))
    now = time.monotonic()
    worker = SimpleNamespace(state=WorkerState(3, 512, True, now, now - 59))
    process.worker = worker  # type: ignore[assignment]
    assert process.healthy()[0]
    worker.state = WorkerState(3, 512, True, now, now - 61)
    ok, detail = process.healthy()
    assert not ok
    assert "not acknowledged by Kafka" in detail
