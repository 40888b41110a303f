"""Steady-state capacity: the highest paced rate whose p99 latency stays within a bound. Pure.

The backlog peak says how fast one worker drains tweets that are already waiting, in large
batches; sizing needs the rate it keeps up with while tweets arrive one by one and the p99
latency stays low. :func:`search` finds it in a few paced probes, in the space of fractions
of the peak (0..``ceiling``, 1 by default: a steady rate above the backlog peak cannot be
sustained, so ``ceiling`` is an assumed failure, never probed):

* the bracket starts from what is already measured (the ``--fractions`` paced runs): low =
  the highest passing fraction below the lowest failing one (0 when none passed), high = the
  lowest failing one (``ceiling`` when none failed);
* then bisection: probe the bracket's middle, a pass raises low, a failure lowers high, until
  high - low is within ``tolerance`` of the peak (5 %) or ``max_probes`` are spent.

What is reported is low: **the highest passing rate below the lowest failing one**. Paced runs
are noisy, so a fraction may pass above one that failed (only the seeds can do that, since the
bisection only probes inside the bracket); such passes are listed as ``inconsistent`` and not
used. Every probe (seeds included) is recorded with the measurement's own statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Capacity", "CapacitySettings", "Measured", "Probe", "search"]


@dataclass(frozen=True)
class CapacitySettings:
    """How the bench searches: the p99 bound, each probe's length, and the search's budget."""

    bound_ms: float = 50.0
    seconds: float = 8.0
    max_probes: int = 5
    tolerance: float = 0.05
    """Stop when the bracket is this narrow, as a fraction of the backlog peak."""


@dataclass(frozen=True)
class Measured:
    """One paced run's p99 and whatever else it measured (kept, not interpreted)."""

    p99_ms: float
    stats: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    fraction: float
    offered_per_s: float
    p99_ms: float
    passed: bool
    source: str
    """``fractions`` (a paced run measured before the search) or ``search``."""
    stats: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Capacity:
    bound_ms: float
    peak_per_s: float
    per_s: float
    """The highest passing rate below the lowest failing one (0 when nothing passed)."""
    fraction: float
    """``per_s`` / the backlog peak."""
    bracket: tuple[float, float]
    """(highest passing, lowest failing or ``ceiling``) as fractions of the peak."""
    converged: bool
    """Whether the bracket ended within ``tolerance`` (else the probes ran out)."""
    inconsistent: list[float]
    """Fractions that passed above a failing one (noise): not used for ``per_s``."""
    probes: list[Probe]

    @property
    def found(self) -> bool:
        return self.per_s > 0


def _passes(p99_ms: float, bound_ms: float) -> bool:
    return not math.isnan(p99_ms) and p99_ms <= bound_ms


_EPSILON = 1e-9
"""Float slack for the bracket's width (0.1 halved is not always within 0.05)."""


def _lowest_failing(probes: Sequence[Probe]) -> float:
    return min((p.fraction for p in probes if not p.passed), default=math.inf)


def _bracket(probes: Sequence[Probe], ceiling: float) -> tuple[float, float]:
    failing = _lowest_failing(probes)
    low = max(
        (p.fraction for p in probes if p.passed and p.fraction < failing and p.fraction <= ceiling),
        default=0.0,
    )
    return low, min(failing, ceiling)


def search(
    measure: Callable[[float], Measured],
    peak_per_s: float,
    *,
    bound_ms: float = 50.0,
    seeds: Sequence[tuple[float, Measured]] = (),
    max_probes: int = 5,
    tolerance: float = 0.05,
    ceiling: float = 1.0,
) -> Capacity:
    """The highest rate (tweets/s) whose ``measure(rate).p99_ms`` ≤ ``bound_ms``.

    ``seeds`` are (fraction of the peak, measurement) already taken; ``measure`` is called at
    most ``max_probes`` times, always strictly inside the current bracket.
    """
    probes = [
        Probe(f, f * peak_per_s, m.p99_ms, _passes(m.p99_ms, bound_ms), "fractions", m.stats)
        for f, m in seeds
    ]
    low, high = _bracket(probes, ceiling)
    spent = 0
    while peak_per_s > 0 and high - low > tolerance + _EPSILON and spent < max_probes:
        fraction = (low + high) / 2
        measured = measure(fraction * peak_per_s)
        spent += 1
        passed = _passes(measured.p99_ms, bound_ms)
        probes.append(
            Probe(
                fraction,
                fraction * peak_per_s,
                measured.p99_ms,
                passed,
                "search",
                measured.stats,
            )
        )
        low, high = (fraction, high) if passed else (low, fraction)
    failing = _lowest_failing(probes)
    return Capacity(
        bound_ms=bound_ms,
        peak_per_s=peak_per_s,
        per_s=low * peak_per_s,
        fraction=low,
        bracket=(low, high),
        converged=high - low <= tolerance + _EPSILON,
        inconsistent=sorted(p.fraction for p in probes if p.passed and p.fraction > failing),
        probes=probes,
    )
