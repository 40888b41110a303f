"""Exactly-once: the loop with :class:`ExactlyOnce` over a fake transactional producer that can
fail at every step. What a ``read_committed`` reader would see is ``log.visible()``: it must
never hold part of a batch, and in the end must hold each input exactly once."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import NoReturn

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.errors import KafkaError, ProducerFencedError
from prometheus_client import CollectorRegistry

from sentistream.worker.core.batcher import BatchPolicy
from sentistream.worker.core.exactly_once import ExactlyOnce, HeldDelivery
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.ports import (
    Delivered,
    TopicPartition,
    TransactionAborted,
    TransactionFailed,
    failure_of,
    when_delivered,
)
from sentistream.worker.core.publish import Topics
from tests.unit.fakes import (
    FakeClassifier,
    FakeClock,
    FakeDelivery,
    FakeRecord,
    FakeTransactionalSink,
    FakeTransactionalSource,
    FakeTransactionLog,
)

IN, OUT, DLQ = "tweets", "tweet-labels", "tweets.dlq"
TIMEOUT_S = 30.0


def rec(offset: int, text: str | None = None, partition: int = 0) -> FakeRecord:
    value = json.dumps({"id": f"{partition}-{offset}", "text": text or f"tweet {offset}"})
    return FakeRecord(IN, partition, offset, 1_700_000_000_000, None, value.encode())


def bad(offset: int, partition: int = 0) -> FakeRecord:
    """Dead-lettered (invalid JSON); its id is in its key."""
    return FakeRecord(
        IN, partition, offset, 1_700_000_000_000, f"{partition}-{offset}".encode(), b"{"
    )


@dataclass
class Harness:
    log: FakeTransactionLog
    source: FakeTransactionalSource
    sink: FakeTransactionalSink
    clock: FakeClock
    registry: CollectorRegistry
    worker: Worker

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def run(self, steps: int = 50) -> None:
        for _ in range(steps):
            self.worker.step()
            self.clock.advance(0.2)


def make(
    records: list[FakeRecord],
    *,
    log: FakeTransactionLog | None = None,
    batch: int = 4,
    adaptive: bool = False,
    pipeline_depth: int = 1,
) -> Harness:
    log = log if log is not None else FakeTransactionLog()
    source = FakeTransactionalSource(log, records)
    sink = FakeTransactionalSink(log)
    clock = FakeClock()
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    worker = Worker(
        source,
        sink,
        FakeClassifier(),
        metrics,
        # A fixed window unless asked: the tests place events between polls and the close.
        policy=BatchPolicy(max_batch_size=batch, max_wait_s=0.1, adaptive=adaptive),
        topics=Topics(output=OUT, dead_letter=DLQ),
        clock=clock,
        guarantee=ExactlyOnce(source, sink, metrics, clock, timeout_s=TIMEOUT_S),
        pipeline_depth=pipeline_depth,
    )
    return Harness(log, source, sink, clock, registry, worker)


def test_the_loop_refuses_to_pipeline_exactly_once():
    """main runs exactly-once at depth 1; the loop itself refuses otherwise, so another
    caller cannot mix batches up in one transaction."""
    with pytest.raises(ValueError, match="ExactlyOnce cannot run pipelined"):
        make([rec(0)], pipeline_depth=2)


def ids(sent: list) -> list[str]:  # type: ignore[type-arg]
    out = []
    for s in sent:
        if s.topic == OUT:
            out.append(json.loads(s.value)["id"])
        else:
            out.append(s.key.decode())
    return out


def assert_whole_batches(log: FakeTransactionLog) -> None:
    """No input is visible twice, at any moment."""
    seen = Counter(i for txn in log.committed for i in ids(txn))
    assert [i for i, n in seen.items() if n > 1] == []


# -- the happy path -------------------------------------------------------------------------


def test_each_batch_is_one_transaction_with_its_offsets():
    h = make([rec(i) for i in range(10)], batch=4)
    h.run()
    assert [len(txn) for txn in h.log.committed] == [4, 4, 2]
    assert ids(h.log.visible()) == [f"0-{i}" for i in range(10)]
    assert h.log.offsets == {TopicPartition(IN, 0): 10}
    assert h.metric("sentistream_transactions_total", outcome="committed") == 3
    assert h.metric("sentistream_transactions_total", outcome="aborted") == 0
    assert h.metric("sentistream_commits_total") == 3
    assert h.source.commits == []  # offsets go only through the transaction
    assert h.worker.guarantee.in_flight == 0


def test_dead_letters_are_in_the_same_transaction_as_the_labels():
    h = make([rec(0), bad(1), rec(2), bad(3)], batch=4)
    h.run()
    assert len(h.log.committed) == 1
    assert sorted(s.topic for s in h.log.committed[0]) == [OUT, OUT, DLQ, DLQ]


def test_labels_are_counted_when_their_transaction_commits_not_when_acknowledged():
    h = make([rec(i) for i in range(4)], batch=4)
    h.sink.fail_next["commit"] = TransactionAborted("coordinator said no (fake)")
    h.worker.step()  # sends acknowledged, commit refused: aborted
    assert h.metric("sentistream_records_labeled_total", label="positive") == 0
    assert h.metric("sentistream_records_labeled_total", label="negative") == 0
    h.run()
    labelled = sum(
        h.metric("sentistream_records_labeled_total", label=label)
        for label in FakeClassifier.labels
    )
    assert labelled == 4


# -- a failure at each step: nothing partial is visible, each input ends visible once --------

ABORTABLE = [
    ("send", KafkaError("produce request failed (fake)")),
    ("send_offsets", TransactionAborted("stale generation (fake)")),
    ("commit", TransactionAborted("coordinator aborted it (fake)")),
]


@pytest.mark.parametrize(("step", "failure"), ABORTABLE, ids=[s for s, _ in ABORTABLE])
def test_an_abortable_failure_aborts_the_batch_rewinds_and_redoes_it(step, failure):
    h = make([rec(i) for i in range(8)], batch=4)
    h.worker.step()  # first batch committed
    assert len(h.log.committed) == 1
    h.sink.fail_next[step] = failure
    h.worker.step()  # second batch: fails at `step`
    assert len(h.log.committed) == 1, "nothing of the failed batch is visible"
    assert len(h.log.aborted) == 1
    assert h.source.rewinds == 1
    assert h.metric("sentistream_transactions_total", outcome="aborted") == 1
    h.run()
    assert ids(h.log.visible()) == [f"0-{i}" for i in range(8)]
    assert h.log.offsets == {TopicPartition(IN, 0): 8}
    assert h.sink.in_transaction  # the next one is open, ready for sends


@pytest.mark.parametrize("step", ["begin", "commit", "abort"])
def test_a_fatal_failure_stops_the_worker_and_a_restart_finishes_exactly_once(step):
    log = FakeTransactionLog()
    records = [rec(i) for i in range(8)]
    h = make(records, log=log, batch=4)
    h.worker.step()
    if step == "abort":  # abort is reached only from an abortable failure
        h.sink.fail_next["commit"] = TransactionAborted("coordinator aborted it (fake)")
    h.sink.fail_next[step] = TransactionFailed(f"{step}: fenced (fake)")
    with pytest.raises(TransactionFailed):
        h.run()
    # Whole batches only: the first (and with a failed begin after it, the second).
    expected = 8 if step == "begin" else 4
    assert ids(log.visible()) == [f"0-{i}" for i in range(expected)]
    # The supervisor restarts the worker: it reads on from the committed offsets.
    restarted = make([], log=log, batch=4)
    restarted.source.feed(*records)
    restarted.source.rewind(TIMEOUT_S)
    restarted.run()
    assert ids(log.visible()) == [f"0-{i}" for i in range(8)]


def test_a_rebalance_while_a_batch_is_in_hand_aborts_it():
    h = make([rec(i) for i in range(6)], batch=4)
    h.worker.step()  # 4 committed
    h.worker.step()  # polls the last 2 into the open batch (not due yet)
    h.source.rebalance()  # the group moves on: positions back to the committed offset
    h.source.paused = {TopicPartition(IN, 0)}  # nothing more fetched before the batch closes
    h.clock.advance(0.2)
    h.worker.step()
    assert h.metric("sentistream_transactions_total", outcome="aborted") == 1
    assert ids(h.log.visible()) == [f"0-{i}" for i in range(4)]
    h.source.paused = set()
    h.run()
    assert ids(h.log.visible()) == [f"0-{i}" for i in range(6)]


def test_records_fetched_under_two_generations_are_never_committed_together():
    h = make([rec(i) for i in range(6)], batch=4)
    h.worker.step()  # 4 committed
    h.worker.step()  # 4 and 5 in the open batch
    h.source.rebalance()  # 4 and 5 are fetched again, under the new generation
    h.run()
    assert h.metric("sentistream_transactions_total", outcome="aborted") == 1
    assert ids(h.log.visible()) == [f"0-{i}" for i in range(6)]


def test_a_partition_moved_away_aborts_the_batch_and_is_not_redone_here():
    h = make([rec(0, partition=0), rec(0, partition=1)], batch=2)
    h.source.assigned = {TopicPartition(IN, 0), TopicPartition(IN, 1)}
    h.worker.step()  # both polled; batch of 2 ready, committed
    h.source.feed(rec(1, partition=0), rec(1, partition=1))
    original_poll = h.source.poll

    def poll_then_lose_partition_1(timeout_s: float, max_records: int):
        polled = original_poll(timeout_s, max_records)
        h.source.assigned = {TopicPartition(IN, 0)}
        return polled

    h.source.poll = poll_then_lose_partition_1  # type: ignore[method-assign]
    h.worker.step()
    assert h.metric("sentistream_transactions_total", outcome="aborted") == 1
    h.source.poll = original_poll  # type: ignore[method-assign]
    h.run()
    assert ids(h.log.visible()) == ["0-0", "1-0", "0-1"]  # 1-1 is its new owner's


def test_a_rewind_that_cannot_read_the_committed_offsets_stops_the_worker():
    h = make([rec(i) for i in range(4)], batch=4)
    h.sink.fail_next["commit"] = TransactionAborted("aborted (fake)")
    h.source.fail_rewind = True
    with pytest.raises(TransactionFailed):
        h.worker.step()
    assert h.log.visible() == []


def test_a_clean_stop_leaves_nothing_open_and_is_clean():
    h = make([rec(i) for i in range(3)], batch=4)
    h.run(3)
    report = h.worker.drain(5.0)
    assert report.clean
    assert ids(h.log.visible()) == ["0-0", "0-1", "0-2"]


# -- any sequence of failures ----------------------------------------------------------------

FAILURES = st.sampled_from(
    [
        ("send", KafkaError("produce failed (fake)")),
        ("send_offsets", TransactionAborted("stale generation (fake)")),
        ("commit", TransactionAborted("aborted by the coordinator (fake)")),
        ("commit", TransactionFailed("fenced (fake)")),
        ("begin", TransactionFailed("fatal state (fake)")),
        ("rebalance", None),
        ("crash", None),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(st.tuples(st.integers(0, 40), FAILURES), max_size=8),
    bad_offsets=st.sets(st.integers(0, 29), max_size=6),
    batch=st.integers(1, 7),
    adaptive=st.booleans(),
)
def test_any_failures_and_crashes_end_with_each_input_visible_exactly_once(
    plan, bad_offsets, batch, adaptive
):
    records = [
        bad(i // 2, partition=i % 2) if i in bad_offsets else rec(i // 2, partition=i % 2)
        for i in range(30)
    ]
    log = FakeTransactionLog()
    by_step: dict[int, tuple[str, BaseException | None]] = {}
    for step, failure in plan:
        by_step.setdefault(step, failure)
    step = 0
    restarts = 0
    while True:
        h = make([], log=log, batch=batch, adaptive=adaptive)
        h.source.feed(*records)
        h.source.rewind(TIMEOUT_S)
        try:
            for _ in range(200):
                injected = by_step.pop(step, None)
                step += 1
                if injected is not None:
                    name, failure = injected
                    if name == "crash":
                        _crash()
                    if name == "rebalance":
                        h.source.rebalance()
                    else:
                        assert failure is not None
                        h.sink.fail_next[name] = failure
                h.worker.step()
                h.clock.advance(0.05)
                assert_whole_batches(log)
            break
        except TransactionFailed:
            restarts += 1
            assert restarts < 20
    visible = Counter(ids(log.visible()))
    expected = {f"{r.partition}-{r.offset}" for r in records}
    assert set(visible) == expected
    assert max(visible.values()) == 1
    dead = {(s.key or b"").decode() for s in log.visible(DLQ)}
    planted = {f"{r.partition}-{r.offset}" for r in records if r.value == b"{"}
    assert dead == planted


def _crash() -> NoReturn:
    """The process dies (SIGKILL): its open transaction is never committed."""
    raise TransactionFailed("SIGKILL (fake)")


# -- the delivery wrapper ----------------------------------------------------------------------


def test_a_held_delivery_succeeds_and_runs_its_callbacks_only_when_released():
    inner = FakeDelivery()
    held = HeldDelivery(inner)
    calls: list[tuple[object, ...]] = []
    when_delivered(held, lambda *a: calls.append(a), "positive")
    inner.success(Delivered(0, 7))
    assert not held.done()
    assert failure_of(held) is None
    assert calls == []
    held.release()
    assert held.result() == Delivered(0, 7)
    assert calls == [("positive", Delivered(0, 7))]


def test_a_held_delivery_released_before_its_record_is_acknowledged_succeeds_with_it():
    inner = FakeDelivery()
    held = HeldDelivery(inner)
    held.release()
    assert not held.done()
    inner.success(Delivered(1, 3))
    assert held.result() == Delivered(1, 3)


def test_a_held_delivery_fails_as_soon_as_its_record_does_and_runs_no_callback():
    inner = FakeDelivery()
    held = HeldDelivery(inner)
    calls: list[object] = []
    when_delivered(held, calls.append)
    inner.failure(ProducerFencedError())
    assert isinstance(failure_of(held), ProducerFencedError)
    held.release()
    held.discard()
    assert isinstance(held.exception(), ProducerFencedError)
    assert calls == []


def test_a_discarded_held_delivery_fails_as_aborted_and_runs_no_callback():
    inner = FakeDelivery()
    held = HeldDelivery(inner)
    calls: list[object] = []
    when_delivered(held, calls.append)
    inner.success(Delivered(0, 1))
    held.discard()
    assert isinstance(failure_of(held), TransactionAborted)
    assert calls == []


def test_a_held_delivery_of_a_refused_send_is_failed_at_once():
    held = HeldDelivery(None, ProducerFencedError())
    assert held.done()
    assert isinstance(failure_of(held), ProducerFencedError)
    assert isinstance(held.exception(), ProducerFencedError)
