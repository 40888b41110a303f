"""A bounded :class:`~sentistream.worker.core.ports.TransactionalSource` for the worker's loop:
the partitions of a relabel's range, assigned (never subscribed: no consumer group to join,
so no live worker sees a rebalance), each read from where the run's own group committed (the
range's start when nothing was) up to its end offset, then paused.

The stopping rule: a partition is finished once the consumer's *position* reached the range's
end (a position, not the last record seen: the last offsets of a range may be transaction
markers, which no poll returns). Records at or after the end that came in the same fetch are
dropped. The run is finished when every partition is; an aborted transaction's rewind takes
partitions back to their committed offsets (or the range's start), and they are read again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple, Protocol

from sentistream.relabel.range import OffsetRange
from sentistream.worker.core.messages import InputRecord
from sentistream.worker.core.ports import TopicPartition, TransactionalSource

__all__ = ["BoundedSource", "Progress", "RangeConsumer"]


class RangeConsumer(TransactionalSource, Protocol):
    """What :class:`BoundedSource` needs beyond the loop's port: manual assignment, seeking,
    the position, and the run's group's committed offsets."""

    def assign(self, partitions: Collection[TopicPartition]) -> None: ...
    def rewind_to(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Seek each partition to its offset (and forget the polls' group tracking)."""

    def position(self, tp: TopicPartition) -> int | None:
        """The next offset the consumer will return for ``tp`` (None: not known yet)."""

    def committed_offsets(
        self, partitions: Collection[TopicPartition], timeout_s: float
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets of those partitions that have one."""

    def close(self, timeout_s: float = 5.0) -> None: ...


class Progress(NamedTuple):
    done: int
    """Offsets read this run (records and markers), of :attr:`total`."""
    total: int
    """Offsets this run had to read when it started (an earlier run's committed ones left out)."""
    skipped: int
    """Offsets of the range an earlier run with the same group had already committed."""


class BoundedSource:
    def __init__(
        self, consumer: RangeConsumer, ranges: Mapping[TopicPartition, OffsetRange]
    ) -> None:
        self.consumer = consumer
        self.ranges = {tp: r for tp, r in ranges.items() if r.size > 0}
        self._run_start: dict[TopicPartition, int] = {}
        self._finished: set[TopicPartition] = set()

    # -- the run ----------------------------------------------------------------------------

    def start(self, timeout_s: float) -> dict[TopicPartition, int]:
        """Assign the range's partitions and seek each to its committed offset (the range's
        start when none); the offsets it starts from."""
        tps = list(self.ranges)
        self.consumer.assign(tps)
        self._run_start = self._targets(timeout_s)
        self.consumer.rewind_to(self._run_start)
        self._finished = {tp for tp in tps if self._run_start[tp] >= self.ranges[tp].end}
        self.consumer.pause(self._finished)
        return dict(self._run_start)

    @property
    def finished(self) -> bool:
        """Every partition has been read to its end offset."""
        return self._finished >= set(self.ranges)

    def progress(self) -> Progress:
        done = total = skipped = 0
        for tp, r in self.ranges.items():
            start = self._run_start.get(tp, r.start)
            skipped += start - r.start
            total += r.end - start
            if tp in self._finished:
                done += r.end - start
            else:
                position = self.consumer.position(tp)
                done += 0 if position is None else max(0, min(position, r.end) - start)
        return Progress(done, total, skipped)

    # -- Source ----------------------------------------------------------------------------

    def poll(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        polled = self.consumer.poll(timeout_s, max_records)
        kept: dict[TopicPartition, Sequence[InputRecord]] = {}
        for tp, records in polled.items():
            r = self.ranges.get(tp)
            if r is None:
                continue
            inside = [x for x in records if r.start <= x.offset < r.end]
            if inside:
                kept[tp] = inside
        self._mark_finished()
        return kept

    def _mark_finished(self) -> None:
        done = set()
        for tp in set(self.ranges) - self._finished:
            position = self.consumer.position(tp)
            if position is not None and position >= self.ranges[tp].end:
                done.add(tp)
        if done:
            self._finished |= done
            self.consumer.pause(done)

    def rewind(self, timeout_s: float) -> None:
        """Back to the run's group's committed offsets, or the range's start where it has
        none (never the partition's beginning), so an aborted transaction's records are read
        again."""
        targets = self._targets(timeout_s)
        self.consumer.rewind_to(targets)
        again = {tp for tp in self._finished if targets[tp] < self.ranges[tp].end}
        self._finished -= again
        self.consumer.resume(again)

    def _targets(self, timeout_s: float) -> dict[TopicPartition, int]:
        committed = self.consumer.committed_offsets(list(self.ranges), timeout_s)
        return {
            tp: min(max(committed.get(tp, r.start), r.start), r.end)
            for tp, r in self.ranges.items()
        }

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_s: float
    ) -> set[TopicPartition]:
        return self.consumer.commit(offsets, timeout_s)

    def assignment(self) -> set[TopicPartition]:
        return self.consumer.assignment()

    def rebalances(self) -> int:
        return self.consumer.rebalances()

    def input_partitions(self) -> int | None:
        return self.consumer.input_partitions()

    def lag(self) -> Mapping[TopicPartition, int]:
        """Offsets left to read in each partition of the range."""
        lag = {}
        for tp, r in self.ranges.items():
            position = self.consumer.position(tp)
            if tp in self._finished:
                lag[tp] = 0
            elif position is not None:
                lag[tp] = max(0, r.end - position)
        return lag

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self.consumer.pause(partitions)

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        """Finished partitions stay paused (the loop resumes its whole assignment)."""
        self.consumer.resume(set(partitions) - self._finished)

    def batch_group(self) -> object | None:
        return self.consumer.batch_group()

    def still_current(self, group: object) -> bool:
        return self.consumer.still_current(group)

    def close(self, timeout_s: float = 5.0) -> None:
        self.consumer.close(timeout_s)
