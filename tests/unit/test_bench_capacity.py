"""The steady-state capacity search against fake measurements (no Kafka, no sleeping)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sentistream.bench import capacity_report
from sentistream.bench.capacity import Capacity, Measured, search
from sentistream.bench.plots import capacity_probes
from sentistream.bench.report import render_markdown, write_report
from tests.unit.test_bench import result

PEAK = 4_000.0
BOUND = 50.0


def threshold(at_fraction: float, calls: list[float]) -> Callable[[float], Measured]:
    """p99 10 ms below ``at_fraction`` of the peak, 500 ms from there up; records each rate."""

    def measure(rate: float) -> Measured:
        calls.append(rate)
        fraction = rate / PEAK
        return Measured(10.0 if fraction < at_fraction else 500.0, {"rate": rate})

    return measure


def check_invariants(capacity: Capacity, max_probes: int) -> None:
    searched = [p for p in capacity.probes if p.source == "search"]
    assert len(searched) <= max_probes
    failing = min((p.fraction for p in capacity.probes if not p.passed), default=math.inf)
    assert capacity.fraction < failing  # below every failure
    assert capacity.fraction == 0.0 or any(
        p.passed and p.fraction == capacity.fraction for p in capacity.probes
    )  # a rate that was measured to pass
    assert capacity.per_s == capacity.fraction * PEAK
    assert all(0 < p.fraction < 1 for p in searched)
    assert capacity.converged == (capacity.bracket[1] - capacity.bracket[0] <= 0.05 + 1e-9)


@given(st.floats(min_value=0.001, max_value=1.5))
def test_a_monotone_system_is_bracketed_within_five_percent_in_five_probes(at: float):
    calls: list[float] = []
    capacity = search(threshold(at, calls), PEAK, bound_ms=BOUND)
    check_invariants(capacity, 5)
    assert capacity.converged  # 5 halvings of [0, 1] give 1/32 < 5 %
    assert capacity.fraction <= at
    assert min(at, 1.0) - capacity.fraction <= 0.05 + 1e-9
    assert capacity.inconsistent == []
    assert [p.offered_per_s for p in capacity.probes] == calls
    assert all(p.stats == {"rate": p.offered_per_s} for p in capacity.probes)


@given(
    st.floats(min_value=0.001, max_value=1.2),
    st.lists(st.sampled_from([0.1, 0.5, 0.9]), unique=True),
)
def test_the_measured_fractions_narrow_the_bracket_first(at: float, seeded: list[float]):
    calls: list[float] = []
    seeds = [(f, Measured(10.0 if f < at else 500.0)) for f in seeded]
    capacity = search(threshold(at, calls), PEAK, bound_ms=BOUND, seeds=seeds)
    check_invariants(capacity, 5)
    assert capacity.converged
    assert [p.source for p in capacity.probes[: len(seeds)]] == ["fractions"] * len(seeds)
    assert min(at, 1.0) - capacity.fraction <= 0.05 + 1e-9
    if 0.5 in seeded and 0.9 in seeded and 0.5 < at <= 0.9:
        assert len(calls) == 3  # [0.5, 0.9] halved three times is 5 %


@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=1, max_value=8))
def test_a_noisy_system_reports_the_highest_pass_below_the_lowest_failure(
    seed: int, max_probes: int
):
    noise = random.Random(seed)
    seeds = [(f, Measured(noise.choice([10.0, 500.0, math.nan]))) for f in (0.1, 0.5, 0.9)]

    def measure(rate: float) -> Measured:
        return Measured(noise.choice([10.0, 60.0]))

    capacity = search(measure, PEAK, bound_ms=BOUND, seeds=seeds, max_probes=max_probes)
    check_invariants(capacity, max_probes)
    failing = min((p.fraction for p in capacity.probes if not p.passed), default=math.inf)
    assert capacity.inconsistent == sorted(
        p.fraction for p in capacity.probes if p.passed and p.fraction > failing
    )
    assert all(
        p.source == "fractions" for p in capacity.probes if p.fraction in capacity.inconsistent
    )


def test_a_pass_above_a_failure_is_listed_and_not_used():
    seeds = [(0.1, Measured(10.0)), (0.5, Measured(70.0)), (0.9, Measured(20.0))]
    capacity = search(lambda rate: Measured(10.0), PEAK, bound_ms=BOUND, seeds=seeds)
    assert capacity.inconsistent == [0.9]
    assert capacity.bracket == (0.45, 0.5)
    assert [round(p.fraction, 3) for p in capacity.probes if p.source == "search"] == [
        0.3,
        0.4,
        0.45,
    ]
    assert capacity.per_s == 0.45 * PEAK


def test_nothing_passing_reports_zero_and_a_nan_p99_fails():
    capacity = search(lambda rate: Measured(math.nan), PEAK, max_probes=3)
    assert (capacity.per_s, capacity.found, capacity.converged) == (0.0, False, False)
    assert [p.fraction for p in capacity.probes] == [0.5, 0.25, 0.125]


def test_a_passing_seed_at_the_ceiling_is_the_capacity_without_probing():
    capacity = search(lambda rate: Measured(math.nan), PEAK, seeds=[(1.0, Measured(5.0))])
    assert (capacity.fraction, capacity.converged, len(capacity.probes)) == (1.0, True, 1)


def test_no_peak_no_probe():
    capacity = search(lambda rate: Measured(1.0), 0.0)
    assert (capacity.per_s, capacity.probes) == (0.0, [])


# -- the report and the figure ------------------------------------------------------------------


def probed(rate: float) -> Measured:
    """A fake probe: p99 20 ms below 1,500 tweets/s, 80 ms from there."""
    p99 = 20.0 if rate < 1_500 else 80.0
    return Measured(
        p99,
        {
            "tweets": 100,
            "sent_per_s": rate,
            "latency_ms": {"p50": 5.0, "p95": 9.0, "p99": p99, "max": 90.0},
            "mean_batch": 2.5,
            "cpu_s": {"worker": 1.0},
        },
    )


def with_capacity(bound_ms: float = 50.0) -> dict[str, Any]:
    """The report test's result, its one end-to-end run searched (as bench.json holds it)."""
    seeds = [(0.1, Measured(15.0, {"mean_batch": 3.0})), (0.5, Measured(60.0))]
    found = search(probed, 5_000.0, bound_ms=bound_ms, seeds=seeds)
    run = result()
    run["models"][0]["end_to_end"][0]["capacity"] = asdict(found)
    return run


def test_the_report_puts_the_capacity_beside_the_backlog_peak_and_judges_it(tmp_path: Path):
    written = write_report(tmp_path, with_capacity(), bucket_size=32)
    (row,) = [r for r in written["targets"] if r["target"] == capacity_report.TARGET]
    assert (row["where"], row["goal"], row["measured"], row["met"]) == (
        "models/m, kafka-python",
        0.7,
        0.25,
        False,
    )
    saved = json.loads((tmp_path / "bench.json").read_text())
    capacity = saved["models"][0]["end_to_end"][0]["capacity"]
    assert (capacity["per_s"], capacity["bracket"]) == (1_250.0, [0.25, 0.3])
    assert [p["source"] for p in capacity["probes"]] == ["fractions"] * 2 + ["search"] * 3
    markdown = (tmp_path / "bench.md").read_text()
    assert render_markdown(saved, 32) == markdown
    assert "Steady-state capacity (p99 ≤ 50 ms): 1,250 tweets/s = 0.25 of the backlog peak" in (
        markdown
    )
    assert (
        "| models/m | kafka-python | 5,000 | 50 | 1,250 | 0.25 | 25%..30% | 5 | yes | none |"
        in (markdown)
    )
    assert "| 3 (search) | 30.0% | 1,500 | 1,500 | 5 | 80 | 90 | 2.5 | no | worker 1.00 |" in (
        markdown
    )
    assert "| 2 (fractions) | 50.0% | 2,500 | 0 |  |  |  | 0.0 | no |  |" in markdown


def test_a_search_at_another_bound_is_reported_but_not_judged(tmp_path: Path):
    written = write_report(tmp_path, with_capacity(bound_ms=100.0), bucket_size=32)
    assert capacity_report.TARGET not in {r["target"] for r in written["targets"]}
    assert "Steady-state capacity (p99 ≤ 100 ms)" in (tmp_path / "bench.md").read_text()


def test_the_capacity_figure_is_drawn(tmp_path: Path):
    models = write_report(tmp_path, with_capacity(), bucket_size=32)["models"]
    assert capacity_probes(models, tmp_path / "capacity.png").stat().st_size > 1_000
