"""Backpressure: when to pause and resume fetching, from the records in flight. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["FlowControl", "FlowDecision"]


class FlowDecision(Enum):
    PAUSE = "pause"
    RESUME = "resume"
    KEEP = "keep"


@dataclass(frozen=True)
class FlowControl:
    """Pause at ``high`` records in flight, resume at ``low`` or below (hysteresis).

    "In flight" counts records taken from Kafka and not yet acknowledged by it: those in the
    open micro-batch and those produced but not acknowledged.
    """

    high: int
    low: int

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high:
            raise ValueError(f"need 0 <= low < high, got low={self.low}, high={self.high}")

    @classmethod
    def for_limit(cls, max_in_flight: int) -> FlowControl:
        return cls(high=max_in_flight, low=max_in_flight // 2)

    def decide(self, in_flight: int, paused: bool) -> FlowDecision:
        if not paused and in_flight >= self.high:
            return FlowDecision.PAUSE
        if paused and in_flight <= self.low:
            return FlowDecision.RESUME
        return FlowDecision.KEEP

    def room(self, in_flight: int) -> int:
        """Records one more poll may take without passing ``high``."""
        return max(0, self.high - in_flight)
