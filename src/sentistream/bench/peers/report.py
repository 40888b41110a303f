"""The comparison with what users would write instead, from one bench result. Pure.

:func:`peer_comparison` puts the peers' backlog figures (``result["peers"]``, from
:mod:`.measure`) beside the first model's worker backlog with each Kafka client, with the
ratios worker / peer and issue 18's targets; :func:`peer_section` is its Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["QUIX_TARGETS", "peer_comparison", "peer_section"]

QUIX_TARGETS: dict[str, float] = {"kafka-python": 3.0, "confluent": 5.0}
"""Issue 18: the worker with this client moves at least this many times the Quix app's
tweets/s."""

QUIX_KEY = "quix_app"


def _per_tweet_us(cpu_s: float, tweets: int) -> float:
    return cpu_s / tweets * 1e6 if tweets else float("nan")


def _worker_rows(models: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not models:
        return []
    rows = []
    for e2e in models[0]["end_to_end"]:
        backlog = e2e["backlog"]
        rows.append(
            {
                "key": f"worker-{e2e['kafka_client']}",
                "name": f"sentistream worker ({e2e['kafka_client']})",
                "kafka_client": e2e["kafka_client"],
                "library": e2e["kafka_client"],
                "tweets": backlog["tweets"],
                "tweets_per_s": backlog["throughput_per_s"],
                "cpu_us_per_tweet": _per_tweet_us(
                    backlog["cpu_s"].get("worker", float("nan")), backlog["tweets"]
                ),
                "peak_rss_mb": e2e["peak_rss_mb"],
            }
        )
    return rows


def _peer_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "key": run["key"],
            "name": run["name"],
            "library": run["library"],
            "tweets": run["tweets"],
            "tweets_per_s": run["throughput_per_s"],
            "cpu_us_per_tweet": _per_tweet_us(run["cpu_s"]["peer"], run["tweets"]),
            "peak_rss_mb": run["peak_rss_mb"],
        }
        for run in runs
    ]


def peer_comparison(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The peers beside the worker, or None when the run had no peers."""
    peers = result.get("peers")
    if not peers:
        return None
    workers = _worker_rows(result.get("models", []))
    others = _peer_rows(peers["runs"])
    ratios = [
        {
            "worker": worker["name"],
            "peer": peer["name"],
            "ratio": worker["tweets_per_s"] / peer["tweets_per_s"],
        }
        for worker in workers
        for peer in others
    ]
    quix = next((peer for peer in others if peer["key"] == QUIX_KEY), None)
    targets = []
    for worker in workers:
        goal = QUIX_TARGETS.get(worker["kafka_client"])
        if goal is None:
            continue
        measured = worker["tweets_per_s"] / quix["tweets_per_s"] if quix else None
        targets.append(
            {
                "target": f"{worker['name']} / Quix app, tweets/s",
                "goal": goal,
                "measured": measured,
                "met": None if measured is None else measured >= goal,
            }
        )
    return {
        "model_dir": peers["model_dir"],
        "peer_tweets": peers["tweets"],
        "rows": others + workers,
        "ratios": ratios,
        "targets": targets,
        "not_run": list(peers.get("not_run", [])),
    }


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def peer_section(comparison: Mapping[str, Any] | None) -> list[str]:
    """The Markdown of :func:`peer_comparison` (nothing for None)."""
    if comparison is None:
        return []
    worker_tweets = sorted(
        {row["tweets"] for row in comparison["rows"] if row["key"].startswith("worker-")}
    )
    lines = [
        "",
        "### What users would write instead (issue 18)",
        "",
        f"Same broker, model (`{comparison['model_dir']}`), tweets and measurement as the "
        "worker's backlog: kcat writes the backlog before the program starts; tweets/s = distinct "
        "ids labelled on the output topic / first to last label as the broker stored them. The "
        "peers classify one tweet at a time (the model's `encode`, one ONNX Runtime call, one "
        f"thread) on {_n(comparison['peer_tweets'])} tweets, the worker on its "
        f"{' and '.join(_n(t) for t in worker_tweets) or 'own'}-tweet backlog: the ratios are "
        "of rates. CPU is the program's own, from its ready line (the worker's: its backlog "
        "run) to the last label.",
        "",
        "| program | library | tweets | tweets/s | CPU µs per tweet | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in comparison["rows"]:
        lines.append(
            f"| {row['name']} | {row['library']} | {_n(row['tweets'])} | "
            f"{_n(row['tweets_per_s'])} | {_n(row['cpu_us_per_tweet'])} | "
            f"{row['peak_rss_mb']:.0f} |"
        )
    peers = list(dict.fromkeys(r["peer"] for r in comparison["ratios"]))
    if peers:
        lines += ["", "| tweets/s ratio | " + " | ".join(f"/ {p}" for p in peers) + " |"]
        lines.append("|---|" + "---:|" * len(peers))
        for worker in dict.fromkeys(r["worker"] for r in comparison["ratios"]):
            ratio = {r["peer"]: r["ratio"] for r in comparison["ratios"] if r["worker"] == worker}
            lines.append(f"| {worker} | " + " | ".join(f"{ratio[p]:.1f}x" for p in peers) + " |")
    if comparison["targets"]:
        lines += ["", "| target | goal | measured | met |", "|---|---:|---:|:---:|"]
        for row in comparison["targets"]:
            measured = "not run" if row["measured"] is None else f"{row['measured']:.1f}x"
            met = "n/a" if row["met"] is None else ("yes" if row["met"] else "no")
            lines.append(f"| {row['target']} | ≥ {row['goal']:g}x | {measured} | {met} |")
    for item in comparison["not_run"]:
        lines.append(f"\n{item['name']}: not run: {item['reason']}")
    return lines
