"""relabel without a broker: the bounded source's stopping rule over a fake assigned consumer,
and the worker's loop over it (at-least-once, and exactly-once with an aborted transaction)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from sentistream.relabel.range import (
    OffsetRange,
)
from sentistream.relabel.source import BoundedSource
from sentistream.worker.core.batcher import BatchPolicy
from sentistream.worker.core.exactly_once import ExactlyOnce
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.messages import InputRecord
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.ports import TopicPartition, TransactionAborted
from sentistream.worker.core.publish import Topics
from tests.unit.fakes import (
    FakeClassifier,
    FakeClock,
    FakeRecord,
    FakeSink,
    FakeTransactionalSink,
    FakeTransactionLog,
)

IN, OUT, DLQ = "tweets", "relabels", "tweets.dlq"
P0, P1 = TopicPartition(IN, 0), TopicPartition(IN, 1)
T0 = 1_700_000_000_000


# -- the bounded source ---------------------------------------------------------------------


def rec(offset: int, partition: int = 0, text: str | None = None) -> FakeRecord:
    value = json.dumps({"id": f"{partition}-{offset}", "text": text or f"tweet {offset}"})
    return FakeRecord(IN, partition, offset, T0 + offset, None, value.encode())


@dataclass
class FakeAssigned:
    """An assigned consumer over fixed partitions: ``records`` per partition (offsets may skip,
    as transaction markers do) up to ``log_end``; ``poll`` returns records from the position
    on, whatever the range (the bounded source must drop those past its end), and moves the
    position past the markers once no record is left, as a fetch of the control batch does.
    Commits and the group's committed offsets live in ``log.offsets``."""

    records: dict[TopicPartition, list[FakeRecord]]
    log_end: dict[TopicPartition, int]
    log: FakeTransactionLog = field(default_factory=FakeTransactionLog)
    assigned: set[TopicPartition] = field(default_factory=set)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)
    polls: int = 0

    def assign(self, partitions: Collection[TopicPartition]) -> None:
        self.assigned = set(partitions)
        self.positions = dict.fromkeys(partitions, 0)

    def rewind_to(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.positions.update(offsets)

    def position(self, tp: TopicPartition) -> int | None:
        return self.positions.get(tp)

    def committed_offsets(
        self, partitions: Collection[TopicPartition], timeout_s: float
    ) -> dict[TopicPartition, int]:
        return {tp: o for tp, o in self.log.offsets.items() if tp in partitions}

    def poll(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        self.polls += 1
        out: dict[TopicPartition, Sequence[InputRecord]] = {}
        for tp in sorted(self.assigned - self.paused):
            ahead = [r for r in self.records.get(tp, []) if r.offset >= self.positions[tp]]
            taken = ahead[:max_records]
            max_records -= len(taken)
            if taken:
                out[tp] = taken
                self.positions[tp] = taken[-1].offset + 1
            if len(taken) == len(ahead):
                self.positions[tp] = max(self.positions[tp], self.log_end[tp])
        return out

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_s: float
    ) -> set[TopicPartition]:
        self.log.offsets.update(offsets)
        return set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def rebalances(self) -> int:
        return 0

    def input_partitions(self) -> int | None:
        return len(self.log_end)

    def lag(self) -> Mapping[TopicPartition, int]:
        return {}

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self.paused |= set(partitions)

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self.paused -= set(partitions)

    def batch_group(self) -> object | None:
        return "simple-group"

    def still_current(self, group: object) -> bool:
        return True

    def rewind(self, timeout_s: float) -> None:
        raise AssertionError("the bounded source rewinds to its own range, never this")

    def close(self, timeout_s: float = 5.0) -> None:
        pass


def consumer(p0: int = 10, p1: int = 5) -> FakeAssigned:
    return FakeAssigned(
        records={P0: [rec(o) for o in range(p0)], P1: [rec(o, 1) for o in range(p1)]},
        log_end={P0: p0, P1: p1},
    )


def read_all(source: BoundedSource, max_records: int = 3, limit: int = 50) -> list[int]:
    offsets = []
    for _ in range(limit):
        if source.finished:
            break
        for records in source.poll(0.01, max_records).values():
            offsets += [r.offset for r in records]
    return offsets


def test_records_at_or_after_the_end_are_dropped_and_the_partition_paused():
    fake = consumer()
    source = BoundedSource(fake, {P0: OffsetRange(2, 6)})
    assert source.start(1.0) == {P0: 2}
    assert read_all(source) == [2, 3, 4, 5]  # the fetch of 6..7 came too; it was dropped
    assert source.finished
    assert P0 in fake.paused
    assert source.lag() == {P0: 0}


def test_a_range_ending_in_markers_finishes_by_position():
    """Offsets 8 and 9 are a transaction's markers: no record has them, the position passes
    them."""
    fake = FakeAssigned(records={P0: [rec(o) for o in range(8)]}, log_end={P0: 10})
    source = BoundedSource(fake, {P0: OffsetRange(5, 10)})
    source.start(1.0)
    assert read_all(source, max_records=10) == [5, 6, 7]
    assert source.finished
    assert source.progress().done == source.progress().total == 5


def test_empty_ranges_are_not_assigned_and_an_empty_run_is_finished_at_once():
    fake = consumer()
    source = BoundedSource(fake, {P0: OffsetRange(4, 4)})
    source.start(1.0)
    assert fake.assigned == set()
    assert source.finished


def test_a_restart_continues_from_the_run_groups_commit():
    fake = consumer()
    fake.log.offsets = {P0: 7, P1: 5}
    source = BoundedSource(fake, {P0: OffsetRange(2, 9), P1: OffsetRange(0, 5)})
    assert source.start(1.0) == {P0: 7, P1: 5}
    assert P1 in fake.paused  # done by the earlier run
    assert source.progress().skipped == 5 + 5
    assert read_all(source) == [7, 8]
    assert source.finished


def test_rewind_goes_back_to_the_ranges_start_when_nothing_was_committed():
    fake = consumer()
    source = BoundedSource(fake, {P0: OffsetRange(3, 6), P1: OffsetRange(1, 3)})
    source.start(1.0)
    read_all(source, max_records=100)
    assert source.finished
    source.rewind(1.0)
    assert fake.positions == {P0: 3, P1: 1}  # the range's start, not the partition's 0
    assert not source.finished
    assert fake.paused == set()
    fake.log.offsets = {P0: 5}
    source.rewind(1.0)
    assert fake.positions == {P0: 5, P1: 1}


def test_the_loop_cannot_resume_a_finished_partition():
    fake = consumer()
    source = BoundedSource(fake, {P0: OffsetRange(0, 2), P1: OffsetRange(0, 5)})
    source.start(1.0)
    source.poll(0.01, 2)  # p0 read to its end
    source.pause(source.assignment())
    source.resume(source.assignment())
    assert fake.paused == {P0}


# -- the worker's loop over it --------------------------------------------------------------


def worker_over(source: BoundedSource, sink: FakeSink, clock: FakeClock, **kw: object) -> Worker:
    metrics = WorkerMetrics.create(CollectorRegistry())
    return Worker(
        source,
        sink,
        FakeClassifier(),
        metrics,
        policy=BatchPolicy(max_batch_size=4, max_wait_s=0.05),
        topics=Topics(output=OUT, dead_letter=DLQ),
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


def run_to_end(worker: Worker, source: BoundedSource, clock: FakeClock, limit: int = 200) -> int:
    steps = 0
    while not (source.finished and worker.in_flight == 0):
        assert steps < limit, "the run did not finish"
        worker.step()
        clock.advance(0.1)
        steps += 1
    return steps


def labelled(sent: Sequence[object]) -> list[tuple[int, int]]:
    return [
        (json.loads(s.value)["source"]["partition"], json.loads(s.value)["source"]["offset"])  # type: ignore[attr-defined]
        for s in sent
    ]


def test_at_least_once_labels_the_range_once_and_commits_its_end():
    fake = consumer()
    clock = FakeClock()
    sink = FakeSink(auto_ack=True)
    source = BoundedSource(fake, {P0: OffsetRange(2, 9), P1: OffsetRange(1, 4)})
    source.start(1.0)
    worker = worker_over(source, sink, clock)
    run_to_end(worker, source, clock)
    assert worker.drain(5.0).clean
    got = labelled(sink.to(OUT))
    assert sorted(got) == [(0, o) for o in range(2, 9)] + [(1, o) for o in range(1, 4)]
    assert fake.log.offsets == {P0: 9, P1: 4}


def test_exactly_once_after_an_abort_reads_the_range_again_from_its_start():
    log = FakeTransactionLog()
    fake = consumer()
    fake.log = log
    clock = FakeClock()
    sink = FakeTransactionalSink(log)
    sink.fail_next["commit"] = TransactionAborted("the broker refused the offsets (fake)")
    source = BoundedSource(fake, {P0: OffsetRange(3, 9)})
    source.start(1.0)
    metrics = WorkerMetrics.create(CollectorRegistry())
    guarantee = ExactlyOnce(source, sink, metrics, clock, timeout_s=5.0)
    worker = worker_over(source, sink, clock, guarantee=guarantee)
    run_to_end(worker, source, clock)
    worker.drain(5.0)
    assert len(log.aborted) == 1
    assert labelled(log.visible(OUT)) == [(0, o) for o in range(3, 9)]
    assert log.offsets == {P0: 9}
