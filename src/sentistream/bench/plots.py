"""The benchmark's figures (PNG), drawn from the same run as its tables."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["capacity_probes", "latency_distribution", "save", "throughput_by_batch"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    """Lay ``fig`` out, write it to ``path`` as a 100 dpi PNG and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


_CLIENT_LINES = ("--", ":", "-.")
"""One line style per Kafka client's end-to-end figure, so two clients can be told apart."""


def throughput_by_batch(models: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Ceiling tweets/s against batch size: a panel per model, a line per threads and calls."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, entry in zip(axes[0], models, strict=True):
        series: dict[str, list[tuple[int, float]]] = {}
        for row in entry["ceiling"]:
            label = f"{row['threads']}, {row['name'].removeprefix('ONNX Runtime, ')}"
            series.setdefault(label, []).append((row["batch_size"], row["per_second"]))
        for label, points in sorted(series.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        for e2e, style in zip(entry["end_to_end"], itertools.cycle(_CLIENT_LINES)):
            ax.axhline(
                e2e["backlog"]["throughput_per_s"],
                linestyle=style,
                color="black",
                label=f"worker end to end ({e2e['kafka_client']})",
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size (tweets)")
        ax.set_ylabel("tweets/s")
        ax.set_title(Path(entry["model"]["folder"]).name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, path)


def latency_distribution(
    models: Sequence[Mapping[str, Any]],
    samples: Mapping[str, Mapping[str, list[float]]],
    path: Path,
) -> Path:
    """Produce→label latency CDF at each load: a panel per model and client."""
    plt = _pyplot()
    panels = [
        (entry, e2e)
        for entry in models
        for e2e in entry["end_to_end"]
        if f"{entry['model']['folder']}|{e2e['kafka_client']}" in samples
    ]
    fig, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), squeeze=False
    )
    for ax, (entry, e2e) in zip(axes[0], panels, strict=False):
        runs = samples[f"{entry['model']['folder']}|{e2e['kafka_client']}"]
        for run in e2e["latency"]:
            values = sorted(runs.get(str(run["fraction"]), []))
            if not values:
                continue
            share = [(i + 1) / len(values) for i in range(len(values))]
            ax.plot(
                [max(v, 0.5) for v in values],
                share,
                label=f"{run['fraction']:.0%} of peak ({run['offered_per_s']:,.0f}/s)",
            )
        ax.set_xscale("log")
        ax.set_xlabel("produce → label stored (ms)")
        ax.set_ylabel("share of tweets")
        ax.set_title(f"{Path(entry['model']['folder']).name}, {e2e['kafka_client']}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)


def capacity_probes(models: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """p99 against the offered rate of every capacity probe: a panel per model and client,
    the bound and the backlog peak as lines, the capacity found as a dotted one."""
    plt = _pyplot()
    panels = [
        (entry, e2e)
        for entry in models
        for e2e in entry["end_to_end"]
        if e2e.get("capacity") is not None
    ]
    fig, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), squeeze=False
    )
    for ax, (entry, e2e) in zip(axes[0], panels, strict=False):
        found = e2e["capacity"]
        for passed, marker, name in ((True, "o", "within bound"), (False, "x", "over")):
            points = sorted(
                (p["offered_per_s"], max(p["p99_ms"], 0.5))
                for p in found["probes"]
                if p["passed"] == passed and p["p99_ms"] == p["p99_ms"]  # NaN: not drawn
            )
            if points:
                ax.plot(
                    [x for x, _ in points],
                    [y for _, y in points],
                    marker=marker,
                    linestyle="none",
                    label=f"probe, p99 {name}",
                )
        ax.axhline(
            found["bound_ms"], color="red", linestyle="--", label=f"{found['bound_ms']:g} ms"
        )
        ax.axvline(found["peak_per_s"], color="black", linestyle="--", label="backlog peak")
        ax.axvline(
            found["per_s"],
            color="black",
            linestyle=":",
            label=f"capacity {found['per_s']:,.0f}/s ({found['fraction']:.0%})",
        )
        ax.set_yscale("log")
        for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis(plt.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlim(left=0)
        ax.set_xlabel("offered rate (tweets/s)")
        ax.set_ylabel("p99 produce → label stored (ms)")
        ax.set_title(f"{Path(entry['model']['folder']).name}, {e2e['kafka_client']}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)
