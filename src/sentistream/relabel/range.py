"""Which records a relabel reads: ``--from``/``--to`` (an ISO-8601 time, ``beginning`` or
``end``) or ``--offsets`` resolved to a half-open offset range per partition. Pure: the
offsets come from an :class:`OffsetLookup` (the kafka-python adapter is
:class:`~sentistream.worker.backends.kafka_python.assigned.AssignedKafkaSource`; the unit
tests use a dict).

A time resolves as Kafka's ``offsets_for_times`` does: the first record whose timestamp is at
or after it (the partition's end when there is none). ``--from T1 --to T2`` therefore reads
the records stamped in ``[T1, T2)`` (for a partition whose timestamps grow with offsets, as
a producer's CreateTime usually does). Every range is clamped to what the partition still
holds (``[beginning, end)``), so a time before the retention limit means the oldest record.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple, Protocol

from sentistream.worker.core.ports import TopicPartition

__all__ = [
    "OffsetLookup",
    "OffsetRange",
    "RangeError",
    "RangeSpec",
    "When",
    "parse_offsets",
    "parse_when",
    "resolve",
]


class RangeError(ValueError):
    """A range that cannot be read: unparsable, reversed, naming a partition the topic lacks."""


class OffsetRange(NamedTuple):
    """Offsets ``start`` (included) to ``end`` (excluded) of one partition."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class When:
    """``beginning``, ``end``, or a time (milliseconds since the epoch, UTC)."""

    kind: Literal["beginning", "end", "time"]
    ms: int = 0

    def __str__(self) -> str:
        if self.kind != "time":
            return self.kind
        return datetime.fromtimestamp(self.ms / 1000, UTC).isoformat(timespec="milliseconds")


def parse_when(text: str) -> When:
    """``beginning``, ``end`` or an ISO-8601 time (``2026-12-01T10:00:00Z``, ``2026-12-01``;
    without a zone: UTC)."""
    word = text.strip().lower()
    if word in ("beginning", "end"):
        return When(word)  # type: ignore[arg-type]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RangeError(
            f"{text!r} is not `beginning`, `end` or an ISO-8601 time such as 2026-12-01T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    if ms < 0:
        raise RangeError(f"{text!r} is before 1970: Kafka timestamps cannot be negative")
    return When("time", ms)


def parse_offsets(text: str) -> dict[int, OffsetRange]:
    """``0:100-200,1:0-50``: partition 0 offsets 100 to 199, partition 1 offsets 0 to 49 (the
    end is excluded, as Kafka's end offsets are)."""
    ranges: dict[int, OffsetRange] = {}
    for part in (p.strip() for p in text.split(",")):
        partition, colon, span = part.partition(":")
        start, dash, end = span.partition("-")
        numbers = (partition, start, end)
        if not (colon and dash) or not all(n.strip().isdigit() for n in numbers):
            raise RangeError(f"--offsets {part!r}: expected PARTITION:START-END, e.g. 0:100-200")
        p, first, last = (int(n) for n in numbers)
        if last < first:
            raise RangeError(f"--offsets {part!r}: END is before START")
        if p in ranges:
            raise RangeError(f"--offsets names partition {p} twice")
        ranges[p] = OffsetRange(first, last)
    return ranges


@dataclass(frozen=True)
class RangeSpec:
    """The range as the operator gave it: ``start``/``end`` times, or per-partition offsets."""

    start: When = When("beginning")
    end: When = When("end")
    offsets: Mapping[int, OffsetRange] | None = None

    def __post_init__(self) -> None:
        if self.start.kind == "end" and self.end.kind != "end":
            raise RangeError("--from end reads nothing: the end is the newest offset")
        if self.end.kind == "beginning":
            raise RangeError("--to beginning reads nothing")
        if self.start.kind == self.end.kind == "time" and self.end.ms < self.start.ms:
            raise RangeError(f"--to {self.end} is before --from {self.start}")

    def describe(self) -> str:
        """Stable text of the range (the run's group id is derived from it)."""
        if self.offsets is not None:
            return "offsets " + ",".join(
                f"{p}:{r.start}-{r.end}" for p, r in sorted(self.offsets.items())
            )
        return f"from {self.start} to {self.end}"


class OffsetLookup(Protocol):
    """What resolving a range needs to ask Kafka (each call one round trip)."""

    def partitions_of(self, topic: str) -> list[int]: ...
    def beginning_offsets(self, tps: Collection[TopicPartition]) -> dict[TopicPartition, int]: ...
    def end_offsets(self, tps: Collection[TopicPartition]) -> dict[TopicPartition, int]: ...
    def offsets_for_time(
        self, tps: Collection[TopicPartition], ms: int
    ) -> dict[TopicPartition, int | None]:
        """Per partition, the first offset whose timestamp is at or after ``ms`` (None: no
        such record)."""


def resolve(lookup: OffsetLookup, topic: str, spec: RangeSpec) -> dict[TopicPartition, OffsetRange]:
    """The offset range of every partition the spec covers (empty ranges included), each
    inside what the partition holds now."""
    partitions = lookup.partitions_of(topic)
    if not partitions:
        raise RangeError(f"topic {topic!r} has no partitions (does it exist?)")
    if spec.offsets is not None:
        unknown = sorted(set(spec.offsets) - set(partitions))
        if unknown:
            raise RangeError(
                f"--offsets names partition(s) {unknown} that {topic!r} does not have "
                f"(it has {len(partitions)})"
            )
        partitions = sorted(spec.offsets)
    tps = [TopicPartition(topic, p) for p in partitions]
    first = lookup.beginning_offsets(tps)
    last = lookup.end_offsets(tps)
    if spec.offsets is not None:
        wanted = {tp: spec.offsets[tp.partition] for tp in tps}
    else:
        starts = _at(lookup, spec.start, tps, first, last)
        ends = _at(lookup, spec.end, tps, first, last)
        wanted = {tp: OffsetRange(starts[tp], ends[tp]) for tp in tps}
    return {tp: _clamp(wanted[tp], first[tp], last[tp]) for tp in tps}


def _at(
    lookup: OffsetLookup,
    when: When,
    tps: list[TopicPartition],
    first: Mapping[TopicPartition, int],
    last: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int]:
    if when.kind == "beginning":
        return dict(first)
    if when.kind == "end":
        return dict(last)
    found = lookup.offsets_for_time(tps, when.ms)
    return {tp: last[tp] if found.get(tp) is None else int(found[tp] or 0) for tp in tps}


def _clamp(wanted: OffsetRange, first: int, last: int) -> OffsetRange:
    start = min(max(wanted.start, first), last)
    end = min(max(wanted.end, start), last)
    return OffsetRange(start, end)
