"""What both Kafka backends do alike, written once: outage logging, the batch's group
generation, and which offsets of a commit are still owned."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sentistream.worker.core.ports import TopicPartition

__all__ = ["BatchGeneration", "OutageLog", "check_record", "names", "split_owned"]

log = logging.getLogger("sentistream.worker.backends")

G = TypeVar("G")


class OutageLog:
    """Says once that Kafka became unreachable and once that it is back, with how long."""

    def __init__(
        self,
        who: str,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._who = who
        self._log = logger
        self._clock = clock
        self.since: float | None = None

    def down(self, why: str) -> bool:
        """Record an outage; logs (and returns True) only on its first report."""
        if self.since is not None:
            return False
        self.since = self._clock()
        self._log.warning("%s: %s", self._who, why)
        return True

    def up(self) -> None:
        if self.since is not None:
            elapsed = self._clock() - self.since
            self._log.info("%s: Kafka reachable again after %.0f s", self._who, elapsed)
            self.since = None


class BatchGeneration(Generic[G]):
    """The group membership under which every record polled since the last :meth:`take`
    was fetched (exactly-once sends the batch's offsets under it), or "mixed" once two polls
    disagree or a rebalance ran inside a poll."""

    def __init__(self, same: Callable[[G, G], bool]) -> None:
        self._same = same
        self._group: G | None = None
        self._mixed = False

    def saw(self, group: G) -> None:
        """Records were polled under ``group``."""
        if self._mixed:
            return
        if self._group is None:
            self._group = group
        elif not self._same(self._group, group):
            self._mixed = True

    def mix(self) -> None:
        """Records were polled across a rebalance."""
        self._mixed = True

    def take(self, current: Callable[[], G]) -> G | None:
        """The batch's membership (``current()`` when nothing was polled), None when mixed;
        starts tracking the next batch."""
        group, mixed = self._group, self._mixed
        self.reset()
        if mixed:
            return None
        return group if group is not None else current()

    def reset(self) -> None:
        self._group, self._mixed = None, False


def split_owned(
    offsets: Mapping[TopicPartition, int], owned: Collection[TopicPartition]
) -> tuple[dict[TopicPartition, int], set[TopicPartition]]:
    """The offsets of partitions still assigned, and the partitions left out (a revoked
    partition's new owner starts from its last commit and redoes the rest)."""
    kept = {tp: offset for tp, offset in offsets.items() if tp in owned}
    return kept, {tp for tp in offsets if tp not in owned}


def names(partitions: Collection[Any]) -> str:
    """``topic-0, topic-1`` for a log line (any client's partitions: ``.topic``,
    ``.partition``)."""
    return ", ".join(sorted(f"{tp.topic}-{tp.partition}" for tp in partitions)) or "none"


def check_record(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> None:
    """The refusals the :class:`~sentistream.worker.core.ports.Sink` port makes for every
    client (kafka-python makes them itself, in these words; librdkafka would send such a
    record): ``ValueError`` for a record with neither key nor value, ``TypeError`` for a
    header that is not a ``(str, bytes)`` pair."""
    if key is None and value is None:
        raise ValueError("Need at least one: key or value")
    for item in headers:
        if not (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], bytes)
        ):
            raise TypeError("All headers items must be (str, bytes) tuples")
