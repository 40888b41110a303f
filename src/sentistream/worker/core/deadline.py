"""A point in time by which something must be over, on an injectable clock.

The shutdown budget (``--shutdown-timeout-s``) and an exactly-once transaction's timeout are
each one :class:`Deadline`; every step inside them asks it how long is left, keeping time for
the steps after it, instead of doing the arithmetic itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentistream.worker.core.ports import Clock, SystemClock

__all__ = ["Deadline"]


@dataclass(frozen=True)
class Deadline:
    at: float
    """When it passes, on ``clock.monotonic()``."""
    clock: Clock

    @classmethod
    def after(cls, seconds: float, clock: Clock | None = None) -> Deadline:
        clock = clock or SystemClock()
        return cls(clock.monotonic() + seconds, clock)

    def left(self, keep_s: float = 0.0) -> float:
        """Seconds until it passes, less ``keep_s`` kept for the steps after this one (never
        negative)."""
        return max(0.0, self.at - keep_s - self.clock.monotonic())

    @property
    def passed(self) -> bool:
        return self.clock.monotonic() >= self.at
