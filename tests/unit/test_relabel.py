"""relabel without a broker: range resolution over a dict of offsets, the bounded source's
stopping rule over a fake assigned consumer, the worker's loop over it (at-least-once and
exactly-once with an aborted transaction), the run's group id, the comparison table."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from prometheus_client import CollectorRegistry

from sentistream.relabel.compare import compare, label_ref
from sentistream.relabel.marking import RELABEL_HEADER, MarkedTransactionalSink
from sentistream.relabel.range import (
    OffsetRange,
    RangeError,
    RangeSpec,
    When,
    parse_offsets,
    parse_when,
    resolve,
)
from sentistream.relabel.run import run_group_id
from sentistream.relabel.source import BoundedSource
from sentistream.worker.core.batcher import BatchPolicy
from sentistream.worker.core.exactly_once import ExactlyOnce
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.messages import InputRecord
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.ports import Outgoing, TopicPartition, TransactionAborted
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
MODEL = Path(__file__).resolve().parents[2] / "models" / "sentistream-lstm"


# -- range resolution -----------------------------------------------------------------------


@dataclass
class DictLookup:
    """Partitions holding offsets ``first..end`` with record ``o`` stamped ``stamps[tp][o]``."""

    first: dict[TopicPartition, int]
    end: dict[TopicPartition, int]
    stamps: dict[TopicPartition, dict[int, int]]

    def partitions_of(self, topic: str) -> list[int]:
        return sorted(tp.partition for tp in self.end if tp.topic == topic)

    def beginning_offsets(self, tps: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.first[tp] for tp in tps}

    def end_offsets(self, tps: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.end[tp] for tp in tps}

    def offsets_for_time(
        self, tps: Collection[TopicPartition], ms: int
    ) -> dict[TopicPartition, int | None]:
        found: dict[TopicPartition, int | None] = {}
        for tp in tps:
            hits = [o for o, t in sorted(self.stamps[tp].items()) if t >= ms]
            found[tp] = hits[0] if hits else None
        return found


def lookup() -> DictLookup:
    # p0 holds 10..19 (older ones deleted), one record a second; p1 holds 0..4, from T0+5 s.
    return DictLookup(
        first={P0: 10, P1: 0},
        end={P0: 20, P1: 5},
        stamps={
            P0: {o: T0 + (o - 10) * 1000 for o in range(10, 20)},
            P1: {o: T0 + (5 + o) * 1000 for o in range(5)},
        },
    )


def test_beginning_to_end_is_what_each_partition_holds():
    ranges = resolve(lookup(), IN, RangeSpec(When("beginning"), When("end")))
    assert ranges == {P0: OffsetRange(10, 20), P1: OffsetRange(0, 5)}


def test_times_resolve_to_the_first_record_at_or_after_them():
    spec = RangeSpec(When("time", T0 + 3000), When("time", T0 + 7000))
    ranges = resolve(lookup(), IN, spec)
    # p0: stamped T0+3s..T0+6.x s -> offsets 13..16; p1: T0+5s, T0+6s -> offsets 0, 1.
    assert ranges == {P0: OffsetRange(13, 17), P1: OffsetRange(0, 2)}


def test_a_time_after_every_record_is_the_end_and_reads_nothing():
    spec = RangeSpec(When("time", T0 + 60_000), When("end"))
    ranges = resolve(lookup(), IN, spec)
    assert ranges == {P0: OffsetRange(20, 20), P1: OffsetRange(5, 5)}
    assert all(r.size == 0 for r in ranges.values())


def test_offsets_are_clamped_to_what_the_partition_holds():
    spec = RangeSpec(offsets=parse_offsets("0:0-15,1:3-99"))
    assert resolve(lookup(), IN, spec) == {P0: OffsetRange(10, 15), P1: OffsetRange(3, 5)}


def test_offsets_of_a_partition_the_topic_lacks_are_refused():
    with pytest.raises(RangeError, match=r"partition\(s\) \[7\]"):
        resolve(lookup(), IN, RangeSpec(offsets=parse_offsets("7:0-1")))


def test_a_topic_without_partitions_is_refused():
    with pytest.raises(RangeError, match="no partitions"):
        resolve(lookup(), "missing", RangeSpec())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("beginning", When("beginning")),
        ("END", When("end")),
        ("2023-11-14T22:13:20Z", When("time", T0)),
        ("2023-11-14T22:13:20", When("time", T0)),  # no zone: UTC
        ("2023-11-15T00:13:20+02:00", When("time", T0)),
    ],
)
def test_when_parses_words_and_iso_times(text, expected):
    assert parse_when(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "1969-12-31T00:00:00Z", ""])
def test_when_refuses_what_it_cannot_read(text):
    with pytest.raises(RangeError):
        parse_when(text)


@pytest.mark.parametrize("text", ["0:5", "0-5", "a:1-2", "0:5-3", "0:1-2,0:3-4", "0:-1-2"])
def test_offsets_refuse_malformed_ranges(text):
    with pytest.raises(RangeError):
        parse_offsets(text)


def test_reversed_and_empty_specs_are_refused():
    with pytest.raises(RangeError, match="before"):
        RangeSpec(When("time", T0), When("time", T0 - 1))
    with pytest.raises(RangeError):
        RangeSpec(When("end"), When("time", T0))
    with pytest.raises(RangeError):
        RangeSpec(When("beginning"), When("beginning"))


def test_the_group_id_is_stable_for_the_same_run_and_differs_otherwise():
    spec = RangeSpec(parse_when("2026-12-01T00:00:00Z"), When("end"))
    same = RangeSpec(parse_when("2026-12-01T01:00:00+01:00"), When("end"))
    base = run_group_id(IN, spec, "sha-a", OUT)
    assert base == run_group_id(IN, same, "sha-a", OUT)
    assert base.startswith("sentistream-relabel-")
    others = {
        run_group_id("other", spec, "sha-a", OUT),
        run_group_id(IN, RangeSpec(), "sha-a", OUT),
        run_group_id(IN, spec, "sha-b", OUT),
        run_group_id(IN, spec, "sha-a", "elsewhere"),
    }
    assert base not in others
    assert len(others) == 4


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


# -- the comparison -------------------------------------------------------------------------


def label(partition: int, offset: int, name: str, sha: str = "new", topic: str = IN) -> bytes:
    return json.dumps(
        {
            "id": f"{partition}-{offset}",
            "label": name,
            "model": {"name": "m", "version": "1", "sha256": sha},
            "source": {"topic": topic, "partition": partition, "offset": offset},
        }
    ).encode()


def test_the_table_counts_matches_by_source_record():
    ranges = {P0: OffsetRange(0, 4), P1: OffsetRange(0, 2)}
    original = [
        label(0, 0, "negative", "old"),
        label(0, 1, "negative", "old"),
        label(0, 1, "positive", "old"),  # redone by an at-least-once worker: the last counts
        label(0, 2, "positive", "old"),
        label(0, 9, "positive", "old"),  # outside the range
        label(1, 0, "negative", "old"),
        label(1, 1, "negative", "old"),  # no new label: dead-lettered by the relabel
        label(0, 3, "positive", "old", topic="elsewhere"),
    ]
    new = [
        label(0, 0, "negative"),
        label(0, 1, "negative"),
        label(0, 2, "positive"),
        label(0, 3, "negative"),  # its original is a dead letter
        label(1, 0, "positive"),
        label(1, 0, "positive", sha="other-run"),  # another model's relabel in the same topic
        b"not json",
        None,
    ]
    c = compare(new, original, ranges, "new")
    assert c.pairs == {
        ("negative", "negative"): 1,
        ("positive", "negative"): 1,
        ("positive", "positive"): 1,
        ("negative", "positive"): 1,
    }
    assert (c.matched, c.differ, c.new_only, c.original_only) == (4, 2, 1, 1)
    assert c.table()[0].split() == ["original", "\\", "new", "negative", "positive"]
    assert c.table()[1].split() == ["negative", "1", "1"]
    assert c.as_dict()["table"] == {
        "negative": {"negative": 1, "positive": 1},
        "positive": {"negative": 1, "positive": 1},
    }


def test_connect_json_labels_are_read_too():
    value = json.dumps(
        {
            "schema": {"type": "struct"},
            "payload": {
                "source_topic": IN,
                "source_partition": 2,
                "source_offset": 7,
                "label": "neutral",
                "model_sha256": "abc",
            },
        }
    ).encode()
    ref = label_ref(value)
    assert ref is not None
    assert (ref.partition, ref.offset, ref.label, ref.model_sha256) == (2, 7, "neutral", "abc")


# -- the command's flags --------------------------------------------------------------------


def invoke(*args: str) -> Result:
    from sentistream.cli import cli

    base = ["relabel", "--input-topic", IN, "--output-topic", OUT]
    return CliRunner().invoke(cli, [*base, "--model-dir", str(MODEL), *args])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "give --from WHEN and --to WHEN (or --offsets)"),
        (("--from", "beginning"), "give --from WHEN and --to WHEN"),
        (("--offsets", "0:1-2", "--from", "beginning"), "either --offsets or --from/--to"),
        (("--from", "yesterday", "--to", "end"), "is not `beginning`, `end` or an ISO-8601"),
        (("--offsets", "0:9-1"), "END is before START"),
        (("--from", "2026-12-02", "--to", "2026-12-01"), "is before --from"),
    ],
)
def test_a_range_that_cannot_be_read_is_a_usage_error(args, says):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_help_says_it_runs_on_kafka_python_only():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "kafka-python only" in " ".join(result.output.split())


def test_an_unreachable_broker_is_one_line_and_exit_2(monkeypatch):
    import sys

    from sentistream.worker.app import main as worker_main

    monkeypatch.setattr(worker_main, "exit_process", sys.exit)
    result = invoke("--from", "beginning", "--to", "end", "--bootstrap-servers", "127.0.0.1:1")
    assert result.exit_code == 2, result.output
    assert "relabel: cannot reach 127.0.0.1:1 (connection refused)" in result.output


def test_every_record_a_relabel_writes_names_its_run():
    log = FakeTransactionLog()
    inner = FakeTransactionalSink(log)
    sink = MarkedTransactionalSink(inner, "sentistream-relabel-0123")  # type: ignore[arg-type]  # no close()
    sink.begin()
    sink.send(Outgoing(OUT, b"k", b"label", [("trace", b"1")], 2))
    sink.send(Outgoing(DLQ, b"k", b"bad", []))
    sink.commit(1.0)
    sent = log.visible()
    assert [s.header(RELABEL_HEADER) for s in sent] == [b"sentistream-relabel-0123"] * 2
    assert sent[0].header("trace") == b"1"
    assert (sent[0].topic, sent[0].partition, sent[0].value) == (OUT, 2, b"label")


def test_the_summary_says_what_was_read_labelled_and_changed():
    from sentistream.relabel.compare import Comparison
    from sentistream.relabel.report import render
    from sentistream.relabel.run import Summary
    from sentistream.relabel.source import Progress

    summary = Summary(
        "sentistream-relabel-0123",
        {"name": "m", "version": "2", "sha256": "abcdef0123456789"},
        {P0: OffsetRange(0, 10), P1: OffsetRange(3, 5)},
        "exactly-once",
        OUT,
        DLQ,
        progress=Progress(8, 8, 4),
        read=8,
        labels={"negative": 5, "positive": 2},
        dead_letters=1,
        seconds=2.0,
        complete=True,
        compared_with="tweet-labels",
        comparison=Comparison(Counter({("negative", "negative"): 4, ("positive", "negative"): 1})),
    )
    text = "\n".join(render(summary))
    assert "relabel of tweets offsets 0:0-10 1:3-5" in text
    assert "records read   8 in 2.0 s (4 records/s); 4 done by an earlier run" in text
    assert "labels         7 (negative 5, positive 2)" in text
    assert "dead letters   1" in text
    assert "complete: every partition read to its end offset" in text
    assert "5 matched, 1 differ (20.0%)" in text
    assert summary.as_dict()["comparison"]["table"]["positive"] == {"negative": 1, "positive": 0}
