"""The fake :class:`~sentistream.worker.core.ports.Source`: records queued per partition."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence

from sentistream.worker.core.messages import HeldRecord, InputRecord
from sentistream.worker.core.ports import (
    CommitDeferred,
    CommitRefused,
    SourceFailed,
    TopicPartition,
)

__all__ = ["FakeRecord", "FakeSource"]

# -- records and the source -----------------------------------------------------------------


FakeRecord = HeldRecord
"""A consumed record (not a fake of behaviour: the record's fields, as the worker reads them)."""


class FakeSource:
    """Records queued per partition; ``poll`` hands out up to ``max_records`` and never waits.

    ``polls`` keeps each ``(timeout_s, max_records)`` asked for, ``commits`` each offsets
    mapping committed. ``refuse_commits`` makes that many next commits raise
    :class:`CommitRefused` (recorded in ``refused``), ``unavailable_commits`` likewise raise
    :class:`CommitDeferred`. ``assigned`` and ``lags`` override the
    default assignment (every partition ever fed) and lag (records still queued). ``paused``
    holds the paused partitions; ``poll`` takes nothing from them. ``commit`` leaves out (and
    returns) partitions not assigned, as the Kafka adapter does. ``rebalance_count`` is
    what ``rebalances`` reports (a test moves it as a group would). ``refuse_polls`` makes
    ``poll`` raise it, as both adapters raise :class:`SourceFailed` when Kafka refuses the
    consumer for good (kafka-python: a non-retriable error out of every poll, e.g.
    ``GroupAuthorizationFailedError``; confluent-kafka: a fatal or authorization error).
    """

    def __init__(self, records: Iterable[FakeRecord] = ()) -> None:
        self._queues: dict[TopicPartition, deque[FakeRecord]] = {}
        self.polls: list[tuple[float, int]] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.refused: list[dict[TopicPartition, int]] = []
        self.refuse_commits = 0
        self.unavailable_commits = 0
        self.assigned: set[TopicPartition] | None = None
        self.lags: dict[TopicPartition, int] | None = None
        self.paused: set[TopicPartition] = set()
        self.commit_timeouts: list[float] = []
        self.rebalance_count = 0
        self.refuse_polls: SourceFailed | None = None
        self.partition_count: int | None = None
        self.closed = False
        self._next_assignment: set[TopicPartition] | None = None
        self.feed(*records)

    def feed(self, *records: FakeRecord) -> None:
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self._queues.setdefault(tp, deque()).append(record)

    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def poll(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        self.polls.append((timeout_s, max_records))
        if self.refuse_polls is not None:
            raise self.refuse_polls
        if self._next_assignment is not None:  # the member rejoins inside poll
            self.assigned, self._next_assignment = self._next_assignment, None
            self.rebalance_count += 1
        out: dict[TopicPartition, list[FakeRecord]] = {}
        room = max_records
        assert max_records > 0, "kafka-python raises ValueError for max_records <= 0"
        for tp, queue in self._queues.items():
            if tp in self.paused or tp not in self.assignment():
                continue
            taken: list[FakeRecord] = []
            while queue and room > 0:
                taken.append(queue.popleft())
                room -= 1
            if taken:
                out[tp] = taken
        return out

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_s: float
    ) -> set[TopicPartition]:
        self.commit_timeouts.append(timeout_s)
        owned = self.assignment()
        dropped = {tp for tp in offsets if tp not in owned}
        offsets = {tp: o for tp, o in offsets.items() if tp in owned}
        if not offsets:
            return dropped
        if self.refuse_commits > 0:
            self.refuse_commits -= 1
            self.refused.append(dict(offsets))
            raise CommitRefused("the group rebalanced (fake)")
        if self.unavailable_commits > 0:
            self.unavailable_commits -= 1
            self.refused.append(dict(offsets))
            raise CommitDeferred("broker unreachable (fake)")
        self.commits.append(dict(offsets))
        return dropped

    def committed(self) -> dict[TopicPartition, int]:
        """The latest committed offset per partition, over all commits."""
        merged: dict[TopicPartition, int] = {}
        for commit in self.commits:
            merged.update(commit)
        return merged

    def assignment(self) -> set[TopicPartition]:
        if self.assigned is not None:
            return set(self.assigned)
        return set(self._queues)

    def rebalances(self) -> int:
        return self.rebalance_count

    def rebalance_to(self, partitions: Collection[TopicPartition]) -> None:
        """The group starts a rebalance that hands this member ``partitions``: as with a real
        group, the member takes them (and counts the rebalance) at its next poll; until then
        it owns what it owned, and Kafka takes its commits (its generation is still current
        while the group prepares the rebalance)."""
        self._next_assignment = set(partitions)

    def input_partitions(self) -> int | None:
        """``partition_count`` if a test set it, else the partitions ever fed."""
        if self.partition_count is not None:
            return self.partition_count
        return len(self._queues) or None

    def lag(self) -> Mapping[TopicPartition, int]:
        if self.lags is not None:
            return dict(self.lags)
        return {tp: len(q) for tp, q in self._queues.items() if tp in self.assignment()}

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self.paused |= set(partitions)

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self.paused -= set(partitions)

    def close(self) -> None:
        self.closed = True
