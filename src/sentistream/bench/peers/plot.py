"""The comparison's figure (PNG), drawn from the same run as its table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sentistream.bench.plots import _pyplot, save

__all__ = ["peers_chart"]

_SHORT = {"plain_loop": "plain loop", "quix_app": "Quix app"}


def peers_chart(comparison: Mapping[str, Any], path: Path) -> Path:
    """Tweets/s of each program, a bar each, the worker's ratio to each peer written on it."""
    plt = _pyplot()
    rows = list(comparison["rows"])
    peers = [row for row in rows if not row["key"].startswith("worker-")]
    fig, ax = plt.subplots(figsize=(8, 0.6 * max(len(rows), 1) + 1.6))
    names = [f"{row['name']}\n{row['tweets']:,} tweets" for row in rows]
    values = [row["tweets_per_s"] for row in rows]
    colours = ["tab:gray" if row in peers else "tab:blue" for row in rows]
    bars = ax.barh(names, values, color=colours)
    ax.invert_yaxis()
    for bar, row in zip(bars, rows, strict=True):
        text = f" {row['tweets_per_s']:,.0f}/s"
        if row not in peers and peers:
            ratios = [
                f"{row['tweets_per_s'] / p['tweets_per_s']:.1f}x {_SHORT.get(p['key'], p['key'])}"
                for p in peers
            ]
            text += f"\n ({', '.join(ratios)})"
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
    ax.set_xlabel("tweets/s, backlog drained through Kafka (labels on the output topic)")
    ax.set_xlim(0, max(values, default=1) * 1.6)
    ax.set_title(f"What users would write instead: {Path(comparison['model_dir']).name}")
    ax.grid(True, axis="x", alpha=0.3)
    ax.tick_params(axis="y", labelsize=8)
    return save(fig, path)
