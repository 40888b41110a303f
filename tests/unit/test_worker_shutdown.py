"""Shutdown tells the truth: bounded, commits what was acknowledged, reports the rest.
Also what a commit counts as, and what /readyz reads."""

from __future__ import annotations

import threading

from sentistream.worker.app.lifecycle import Lifecycle
from sentistream.worker.settings import WorkerSettings
from tests.unit.test_worker_loop import TP0, TP1, make, texts


def test_a_flush_that_times_out_still_commits_every_acknowledged_batch():
    h = make(texts(6), batch=2)
    for _ in range(3):
        h.worker.step()
    h.sink.ack(0)
    h.sink.ack(1)  # batch 1 acknowledged; batches 2 and 3 stuck
    h.sink.ack(4)
    h.sink.ack(5)  # batch 3 acknowledged, but it may not be committed past batch 2
    h.sink.hang = True
    report = h.worker.drain(5.0)
    assert h.source.commits == [{TP0: 2}]
    assert not report.clean
    assert report.undelivered == 4
    assert report.committed
    assert "pending" in report.detail


def test_a_refused_final_commit_is_not_a_clean_stop():
    h = make(texts(2), batch=2, auto_ack=True)
    h.worker.step()
    h.source.refuse_commits = 1
    report = h.worker.drain(5.0)
    assert report.undelivered == 0
    assert not report.committed
    assert not report.clean
    assert "commit" in report.detail
    assert h.metric("sentistream_commit_failures_total", reason="rebalance") == 1


def test_a_final_commit_kafka_cannot_take_is_retried_once_within_the_deadline():
    h = make(texts(2), batch=2, auto_ack=True)
    h.worker.step()
    h.source.unavailable_commits = 1
    report = h.worker.drain(5.0)
    assert report.clean
    assert h.source.commits == [{TP0: 2}]
    assert all(t <= 5.0 for t in h.source.commit_timeouts)

    h2 = make(texts(2), batch=2, auto_ack=True)
    h2.worker.step()
    h2.source.unavailable_commits = 2
    assert not h2.worker.drain(5.0).clean


def test_a_delivery_refused_at_shutdown_is_reported_not_raised():
    h = make(texts(2), batch=2)
    h.worker.step()
    h.sink.fail(0, RuntimeError("NotEnoughReplicas after retries"))
    h.sink.ack(1)
    report = h.worker.drain(5.0)
    assert not report.clean
    assert "NotEnoughReplicas" in report.detail
    assert h.source.commits == []


def test_commits_total_counts_only_commits_that_sent_offsets():
    h = make(texts(2, partition=1), batch=2, auto_ack=True)
    h.worker.step()
    h.source.assigned = {TP0}  # partition 1 moved before its offsets could be committed
    h.clock.advance(0.5)
    h.worker.step()
    assert h.source.commits == []
    assert h.metric("sentistream_commits_total") == 0
    assert h.metric("sentistream_commit_failures_total", reason="rebalance") == 1


def test_a_commit_of_owned_and_moved_partitions_counts_once_each_way():
    h = make([*texts(2), *texts(2, partition=1)], batch=4, auto_ack=True)
    h.worker.step()
    h.source.assigned = {TP0}
    h.clock.advance(0.5)
    h.worker.step()
    assert h.source.commits == [{TP0: 2}]
    assert h.metric("sentistream_commits_total") == 1
    assert h.metric("sentistream_commit_failures_total", reason="rebalance") == 1
    assert TP1 not in h.source.committed()


class _SingleThreadedSource:
    """Fails like a non-thread-safe client would be misused: from any thread but its own."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self._owner = threading.get_ident()

    def __getattr__(self, name: str) -> object:
        if threading.get_ident() != self._owner:
            raise AssertionError(f"{name} called from another thread")
        return getattr(self._inner, name)


def test_readyz_and_healthz_read_the_loops_snapshot_not_the_consumer():
    h = make(texts(2), batch=2, auto_ack=True)
    h.worker.source = _SingleThreadedSource(h.source)  # type: ignore[assignment]
    h.worker.step()
    process = Lifecycle(WorkerSettings(health_stall_s=30))
    process.worker = h.worker
    answers: list[tuple[bool, str]] = []

    def probe() -> None:
        answers.append(process.ready())

    thread = threading.Thread(target=probe)  # as the HTTP server's thread calls it
    thread.start()
    thread.join()
    assert answers == [(True, "1 partition(s) assigned")]
    assert h.worker.state.assigned == 1
    assert h.worker.state.last_step_at == h.clock.monotonic()
