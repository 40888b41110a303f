"""The steady-state capacity in bench.md and the targets, from bench.json's data. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TARGET", "TARGET_BOUND_MS", "capacity_ratio", "probe_lines", "summary_lines"]

#: Issue 18's target: the steady-state capacity at p99 ≤ 50 ms is at least 0.7 of the peak.
TARGET = "steady-state capacity (p99 ≤ 50 ms) / backlog peak"
TARGET_BOUND_MS = 50.0


def capacity_ratio(e2e: Mapping[str, Any]) -> float | None:
    """The capacity / backlog peak to judge against :data:`TARGET` (None: no search at 50 ms)."""
    found = e2e.get("capacity")
    if not found or found["bound_ms"] != TARGET_BOUND_MS:
        return None
    return float(found["fraction"])


def _bracket(found: Mapping[str, Any]) -> str:
    low, high = found["bracket"]
    return f"{low:.0%}..{high:.0%}"


def summary_lines(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per model folder and Kafka client: the backlog peak beside the capacity."""
    rows = [
        (entry, e2e)
        for entry in models
        for e2e in entry["end_to_end"]
        if e2e.get("capacity") is not None
    ]
    if not rows:
        return []
    lines = [
        "",
        "### Steady-state capacity: the highest paced rate with p99 within the bound",
        "",
        "Probes bisect the rate between the highest passing and the lowest failing one, seeded "
        "with the paced runs above; what is reported is the highest passing rate below the "
        "lowest failing one (a pass above a failure, noise, is listed, not used).",
        "",
        "| model | client | backlog peak tweets/s | p99 bound ms | capacity tweets/s "
        "| / backlog peak | bracket | probes | converged | passes above a failure |",
        "|---|---|---:|---:|---:|---:|---|---:|:---:|---|",
    ]
    for entry, e2e in rows:
        found = e2e["capacity"]
        inconsistent = ", ".join(f"{f:.0%}" for f in found["inconsistent"]) or "none"
        lines.append(
            f"| {entry['model']['folder']} | {e2e['kafka_client']} | "
            f"{found['peak_per_s']:,.0f} | {found['bound_ms']:g} | {found['per_s']:,.0f} | "
            f"{found['fraction']:.2f} | {_bracket(found)} | {len(found['probes'])} | "
            f"{'yes' if found['converged'] else 'no'} | {inconsistent} |"
        )
    return lines


def _cpu(cpu: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in cpu.items())


def probe_lines(e2e: Mapping[str, Any]) -> list[str]:
    """The capacity beside the backlog peak, then every probe in the order it was taken."""
    found = e2e.get("capacity")
    if found is None:
        return []
    lines = [
        "",
        f"Steady-state capacity (p99 ≤ {found['bound_ms']:g} ms): {found['per_s']:,.0f} "
        f"tweets/s = {found['fraction']:.2f} of the backlog peak "
        f"({found['peak_per_s']:,.0f} tweets/s); bracket {_bracket(found)}"
        f"{'' if found['converged'] else ', not converged (probes ran out)'}.",
        "",
        "| probe | load | offered/s | sent/s | p50 ms | p99 ms | max ms | mean batch "
        "| within bound | CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|---|",
    ]
    for n, probe in enumerate(found["probes"], 1):
        stats = probe["stats"]
        ms = stats.get("latency_ms", {})
        cells = [f"{ms[k]:.0f}" if k in ms else "" for k in ("p50", "p99", "max")]
        lines.append(
            f"| {n} ({probe['source']}) | {probe['fraction']:.1%} | "
            f"{probe['offered_per_s']:,.0f} | {stats.get('sent_per_s', 0):,.0f} | "
            f"{cells[0]} | {cells[1]} | {cells[2]} | {stats.get('mean_batch', 0):.1f} | "
            f"{'yes' if probe['passed'] else 'no'} | {_cpu(stats.get('cpu_s', {}))} |"
        )
    return lines
