"""Micro-batching policy: gather records until ``max_batch_size`` or ``max_wait_s``. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sentistream.worker.messages import InputRecord

__all__ = ["BatchPolicy", "MicroBatcher"]


@dataclass(frozen=True)
class BatchPolicy:
    """A micro-batch closes at ``max_batch_size`` records or ``max_wait_s`` after its first."""

    max_batch_size: int
    max_wait_s: float
    poll_timeout_s: float = 0.1
    """How long an idle poll waits; also bounds how fast a stop request is noticed."""
    commit_interval_s: float = 0.5
    """Delivered offsets are committed at most this often (and always at shutdown)."""


class MicroBatcher:
    def __init__(self, policy: BatchPolicy) -> None:
        self.policy = policy
        self._records: list[InputRecord] = []
        self._opened_at = 0.0

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

    def wait_s(self, now: float) -> float:
        """How long the next poll may wait: until the open batch is due, else idle."""
        if self._records:
            return max(0.0, self._opened_at + self.policy.max_wait_s - now)
        return self.policy.poll_timeout_s

    def ready(self, now: float) -> bool:
        return bool(self._records) and (
            len(self._records) >= self.policy.max_batch_size
            or now >= self._opened_at + self.policy.max_wait_s
        )

    def take(self) -> list[InputRecord]:
        records, self._records = self._records, []
        return records
