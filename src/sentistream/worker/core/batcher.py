"""Micro-batching policy: when does a batch of consumed records go to the model. Pure.

A micro-batch closes at ``max_batch_size`` records, or ``max_wait_s`` after its first record
at the latest. With ``adaptive`` (the default) it also closes as soon as a poll comes back
with fewer records than it asked for: the consumer has handed over everything it had fetched,
so waiting longer only adds latency. At low load a tweet therefore goes to the model with the
poll that brought it (no ``max_wait_s`` added); under a backlog every poll returns as many
records as it asked for and batches fill to the maximum. In between, while the model is still
inferring the previous batch (``model_busy``: pipelining), a drained batch stays open and
keeps taking what the next polls bring until the model is free: it could only queue behind
that batch anyway, and one larger batch costs less than many small ones (fewer model calls,
fetches and produce requests), so under steady load the batch grows with the load.

The loop tells the batcher how each poll went: :meth:`MicroBatcher.add` for what it brought,
then :meth:`MicroBatcher.polled` with how many records it asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sentistream.worker.core.messages import InputRecord

__all__ = ["BatchPolicy", "MicroBatcher"]


@dataclass(frozen=True)
class BatchPolicy:
    """A micro-batch closes at ``max_batch_size`` records or ``max_wait_s`` after its first
    (and, with ``adaptive``, as soon as a poll drains the consumer's fetched records)."""

    max_batch_size: int
    max_wait_s: float
    poll_timeout_s: float = 0.1
    """How long an idle poll waits; also bounds how fast a stop request is noticed."""
    commit_interval_s: float = 0.5
    """Delivered offsets are committed at most this often (and always at shutdown)."""
    adaptive: bool = True
    """Close a batch as soon as a poll returns fewer records than it asked for."""


class MicroBatcher:
    def __init__(self, policy: BatchPolicy) -> None:
        self.policy = policy
        self._records: list[InputRecord] = []
        self._opened_at = 0.0
        self._added_since_poll = 0
        self._drained = False

    def __len__(self) -> int:
        return len(self._records)

    @property
    def room(self) -> int:
        return self.policy.max_batch_size - len(self._records)

    def add(self, records: Iterable[InputRecord], now: float) -> None:
        for record in records:
            if not self._records:
                self._opened_at = now
            self._records.append(record)
            self._added_since_poll += 1

    def polled(self, asked: int) -> None:
        """The poll that asked for ``asked`` records is over (its records were added)."""
        self._drained = self._added_since_poll < asked
        self._added_since_poll = 0

    def wait_s(self, now: float) -> float:
        """How long the next poll may wait: until the open batch is due, else idle."""
        if self._records:
            return max(0.0, self._opened_at + self.policy.max_wait_s - now)
        return self.policy.poll_timeout_s

    def ready(self, now: float, *, model_busy: bool = False) -> bool:
        """Full, due, or (adaptive) drained while the model has nothing in hand."""
        return bool(self._records) and (
            len(self._records) >= self.policy.max_batch_size
            or now >= self._opened_at + self.policy.max_wait_s
            or (self.policy.adaptive and self._drained and not model_busy)
        )

    def take(self) -> list[InputRecord]:
        records, self._records = self._records, []
        self._drained = False
        return records
