"""relabel without a broker: a range given as times, `beginning`/`end` or offsets resolved
over a dict of offsets, the run's group id, and the command's refusals of ranges it cannot
read."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

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
from sentistream.worker.core.ports import TopicPartition

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
