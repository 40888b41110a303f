"""The benchmark's JSON result and Markdown tables (one run, every figure from it)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentistream.bench import capacity_report
from sentistream.bench.peers.report import peer_comparison, peer_section

__all__ = ["TARGETS", "machine", "one_thread_ceiling", "render_markdown", "write_report"]

#: Issue 11's targets and issue 18's capacity: (what, comparison, goal).
TARGETS: dict[str, dict[str, Any]] = {
    "end to end / one-thread ceiling (kafka-python)": {"goal": 0.6, "at_least": True},
    "end to end / one-thread ceiling (confluent)": {"goal": 0.8, "at_least": True},
    "p99 at 50 % of peak, ms": {"goal": 50.0, "at_least": False},
    "p99 at 10 % of peak, ms": {"goal": 20.0, "at_least": False},
    "peak RSS, MB": {"goal": 123.0, "at_least": False},
    "start to ready, s": {"goal": 1.4, "at_least": False},
    capacity_report.TARGET: {"goal": 0.7, "at_least": True},
}

REFERENCE_BATCH = 256


def machine() -> dict[str, Any]:
    import onnxruntime

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "platform": platform.platform(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (how busy the machine was)."""
    return [round(x, 2) for x in os.getloadavg()]


def one_thread_ceiling(ceiling: Sequence[dict[str, Any]], bucket_size: int) -> float:
    """The reference ceiling: one thread, length buckets, batches of 256 (else the best
    one-thread figure)."""
    one = [row for row in ceiling if row["threads"] == "1 thread"]
    for row in one:
        if row["batch_size"] == REFERENCE_BATCH and str(bucket_size) in row["name"]:
            return float(row["per_second"])
    return max((float(row["per_second"]) for row in one), default=float("nan"))


def _targets(result: dict[str, Any], bucket_size: int) -> list[dict[str, Any]]:
    rows = []
    for entry in result["models"]:
        reference = one_thread_ceiling(entry["ceiling"], bucket_size)
        for e2e in entry["end_to_end"]:
            where = f"{entry['model']['folder']}, {e2e['kafka_client']}"
            by_fraction = {run["fraction"]: run for run in e2e["latency"]}
            measured = {
                f"end to end / one-thread ceiling ({e2e['kafka_client']})": e2e["backlog"][
                    "throughput_per_s"
                ]
                / reference,
                "peak RSS, MB": e2e["peak_rss_mb"],
                "start to ready, s": e2e["start_to_ready_s"],
            }
            for fraction, name in (
                (0.5, "p99 at 50 % of peak, ms"),
                (0.1, "p99 at 10 % of peak, ms"),
            ):
                if fraction in by_fraction:
                    measured[name] = by_fraction[fraction]["latency_ms"]["p99"]
            if (ratio := capacity_report.capacity_ratio(e2e)) is not None:
                measured[capacity_report.TARGET] = ratio
            for name, value in measured.items():
                target = TARGETS[name]
                met = value >= target["goal"] if target["at_least"] else value <= target["goal"]
                rows.append(
                    {
                        "target": name,
                        "where": where,
                        "goal": target["goal"],
                        "measured": value,
                        "met": met,
                    }
                )
    return rows


def write_report(out: Path, result: dict[str, Any], *, bucket_size: int) -> dict[str, Any]:
    """``bench.json`` (without latency samples) and ``bench.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    result = dict(result)
    result["targets"] = _targets(result, bucket_size)
    if result.get("peers"):
        result["peer_comparison"] = peer_comparison(result)
    samples = result.pop("samples", {})
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "latency-samples.json").write_text(json.dumps(samples) + "\n")
    (out / "bench.md").write_text(render_markdown(result, bucket_size))
    return result


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in cpu.items())


def render_markdown(result: dict[str, Any], bucket_size: int) -> str:
    m = result["machine"]
    lines = [
        f"Measured with `{result['command']}` on {result['date']}: {m['cores']} cores "
        f"({m['cpu']}), Python {m['python']}, ONNX Runtime {m['onnxruntime']}. Load average "
        f"(1/5/15 min) at the start {result['load_average_start']}, at the end "
        f"{result['load_average_end']}.",
    ]
    if result.get("worker_settings") or result.get("worker_env"):
        lines.append(
            f"\nWorker settings {result.get('worker_settings') or 'default'}, extra worker "
            f"environment {result.get('worker_env') or 'none'}."
        )
    if result.get("broker_warm_up_s"):
        lines.append(
            f"\nThe throw-away broker was warmed up first ({result['broker_warm_up_s']:g} s of "
            "backlog and paced load through a worker, not measured)."
        )
    for entry in result["models"]:
        lines += _model_section(entry, bucket_size)
    lines += _by_client(result, bucket_size)
    lines += capacity_report.summary_lines(result["models"])
    if result["scale_out"]:
        lines += [
            "",
            "### Scale-out (first model; workers started on empty topics, then a kcat backlog)",
            "",
            "| workers | partitions | tweets | labels on the output topic | tweets/s | CPU s |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for row in result["scale_out"]:
            lines.append(
                f"| {row['workers']} | {row['partitions']} | {_n(row['tweets'])} | "
                f"{_n(row['labels_on_topic'])} | {_n(row['throughput_per_s'])} | "
                f"{_cpu(row['cpu_s'])} |"
            )
    lines += peer_section(result.get("peer_comparison"))
    if result.get("targets"):
        lines += [
            "",
            "### Targets (issues 11 and 18)",
            "",
            "| target | where | goal | measured | met |",
        ]
        lines.append("|---|---|---:|---:|:---:|")
        for row in result["targets"]:
            lines.append(
                f"| {row['target']} | {row['where']} | {row['goal']:g} | "
                f"{row['measured']:,.3g} | {'yes' if row['met'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def _by_client(result: dict[str, Any], bucket_size: int) -> list[str]:
    """One row per model folder and Kafka client: the end-to-end figures side by side."""
    rows = [(entry, e2e) for entry in result["models"] for e2e in entry["end_to_end"]]
    if not rows:
        return []
    lines = [
        "",
        "### End to end by Kafka client",
        "",
        "| model | client | backlog tweets/s | / one-thread ceiling | p99 at 10 % ms "
        "| p99 at 50 % ms | peak RSS MB | start to ready s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entry, e2e in rows:
        reference = one_thread_ceiling(entry["ceiling"], bucket_size)
        p99 = {run["fraction"]: run["latency_ms"]["p99"] for run in e2e["latency"]}
        cells = [f"{p99[f]:.0f}" if f in p99 else "" for f in (0.1, 0.5)]
        throughput = e2e["backlog"]["throughput_per_s"]
        lines.append(
            f"| {entry['model']['folder']} | {e2e['kafka_client']} | {_n(throughput)} | "
            f"{throughput / reference:.2f} | {cells[0]} | {cells[1]} | "
            f"{e2e['peak_rss_mb']:.0f} | {e2e['start_to_ready_s']:.2f} |"
        )
    return lines


def _model_section(entry: dict[str, Any], bucket_size: int) -> list[str]:
    model = entry["model"]
    lines = [
        "",
        f"## `{model['folder']}` ({model['name']} {model['version']}, {model['lstm_op']}, "
        f"{model['quantization']})",
        "",
        f"### Ceiling: ONNX Runtime alone, tweets/s ({entry['mean_tokens']:.1f} tokens a tweet "
        "on average)",
        "",
    ]
    columns = sorted({(row["threads"], row["name"]) for row in entry["ceiling"]})
    batches = sorted({row["batch_size"] for row in entry["ceiling"]})
    lines.append(
        "| batch | "
        + " | ".join(f"{t}, {n.removeprefix('ONNX Runtime, ')}" for t, n in columns)
        + " |"
    )
    lines.append("|---:|" + "---:|" * len(columns))
    for batch in batches:
        cells = []
        for threads, name in columns:
            found = [
                r["per_second"]
                for r in entry["ceiling"]
                if (r["threads"], r["name"], r["batch_size"]) == (threads, name, batch)
            ]
            cells.append(_n(found[0]) if found else "")
        lines.append(f"| {batch} | " + " | ".join(cells) + " |")
    for row in entry["baselines"]:
        lines.append(f"\nBaseline, {row['name']}: {_n(row['per_second'])} tweets/s.")
    lines += [
        "",
        "### Per-stage cost (one thread; CPU: every thread of the process)",
        "",
        "| stage | µs per tweet, wall | µs per tweet, CPU |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {s['stage']} | {s['us_per_tweet']:.1f} | {s.get('cpu_us_per_tweet', 0.0):.1f} |"
        for s in entry["stages"]
    ]
    reference = one_thread_ceiling(entry["ceiling"], bucket_size)
    for e2e in entry["end_to_end"]:
        backlog = e2e["backlog"]
        lines += [
            "",
            f"### End to end, `{e2e['kafka_client']}`",
            "",
            "| run | tweets | tweets/s | / one-thread ceiling | mean batch | CPU s |",
            "|---|---:|---:|---:|---:|---|",
            f"| backlog (kcat, before the clock) | {_n(backlog['tweets'])} | "
            f"{_n(backlog['throughput_per_s'])} | {backlog['throughput_per_s'] / reference:.2f} | "
            f"{backlog['mean_batch']:.0f} | {_cpu(backlog['cpu_s'])} |",
            "",
            f"Labels counted on the output topic: {_n(backlog['labels_on_topic'])} "
            f"({backlog['duplicates']} duplicates) over {backlog['span_s']:.2f} s; the worker's "
            f"own counter said {_n(backlog['worker_labeled_total'])}. Start to ready "
            f"{e2e['start_to_ready_s']:.2f} s, peak RSS {e2e['peak_rss_mb']:.0f} MB.",
            "",
            "| load | offered/s | sent/s | p50 ms | p95 ms | p99 ms | max ms | mean batch "
            "| CPU s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for run in e2e["latency"]:
            ms = run["latency_ms"]
            lines.append(
                f"| {run['fraction']:.0%} | {_n(run['offered_per_s'])} | {_n(run['sent_per_s'])} | "
                f"{ms['p50']:.0f} | {ms['p95']:.0f} | {ms['p99']:.0f} | {ms['max']:.0f} | "
                f"{run['mean_batch']:.1f} | {_cpu(run['cpu_s'])} |"
            )
        lines += capacity_report.probe_lines(e2e)
    return lines
