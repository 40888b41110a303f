"""The benchmark's JSON result and Markdown table."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sentistream.bench.e2e import EndToEnd
from sentistream.bench.raw import Throughput

__all__ = ["machine", "write_report"]

TARGETS = {
    "raw_ceiling_per_s": 15_000,
    "end_to_end_fraction_of_ceiling": 0.90,
    "p99_latency_ms": 50,
    "peak_rss_mb": 250,
    "start_to_ready_s": 2.0,
}


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


def write_report(
    out: Path,
    *,
    model: dict[str, Any],
    ceiling: list[Throughput],
    baselines: list[Throughput],
    end_to_end: EndToEnd | None,
    command: str,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    best = max(ceiling, key=lambda t: t.per_second)
    result: dict[str, Any] = {
        "command": command,
        "machine": machine(),
        "model": model,
        "ceiling": [asdict(t) | {"per_second": t.per_second} for t in ceiling],
        "baselines": [asdict(t) | {"per_second": t.per_second} for t in baselines],
        "end_to_end": asdict(end_to_end) if end_to_end else None,
    }
    status = {"raw_ceiling_per_s": best.per_second}
    if end_to_end:
        status |= {
            "end_to_end_fraction_of_ceiling": end_to_end.throughput_per_s / best.per_second,
            "p99_latency_ms": end_to_end.latency_ms["p99"],
            "peak_rss_mb": end_to_end.peak_rss_mb,
            "start_to_ready_s": end_to_end.start_to_ready_s,
        }
    result["targets"] = {
        name: {
            "target": TARGETS[name],
            "measured": value,
            "met": value >= TARGETS[name]
            if name in ("raw_ceiling_per_s", "end_to_end_fraction_of_ceiling")
            else value <= TARGETS[name],
        }
        for name, value in status.items()
    }
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench.md").write_text(render_markdown(result))
    return result


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Measured with `{result['command']}` on {m['cores']} cores ({m['cpu']}), "
        f"Python {m['python']}, ONNX Runtime {m['onnxruntime']}; model "
        f"{result['model']['name']} {result['model']['version']} "
        f"({result['model']['lstm_op']}, {result['model']['quantization']}).",
        "",
        "| what | batch | tweets/s |",
        "|---|---:|---:|",
    ]
    for row in result["ceiling"]:
        lines.append(
            f"| ceiling (no Kafka): {row['name']} | {row['batch_size']} | "
            f"{row['per_second']:,.0f} |"
        )
    for row in result["baselines"]:
        lines.append(f"| baseline: {row['name']} | 1 | {row['per_second']:,.0f} |")
    e2e = result["end_to_end"]
    if e2e:
        lines.append(
            f"| worker end to end through Kafka (backlog of {e2e['tweets']:,}, "
            f"{e2e['worker_settings'].get('processing_guarantee', 'at-least-once')}) | "
            f"≤ {e2e['worker_settings'].get('max_batch_size', 'default')} | "
            f"{e2e['throughput_per_s']:,.0f} |"
        )
        lines += [
            "",
            f"Produce→label latency at {e2e['offered_rate_per_s']:,.0f} tweets/s offered "
            f"({e2e['latency_tweets']:,} tweets): p50 {e2e['latency_ms']['p50']:.1f} ms, "
            f"p95 {e2e['latency_ms']['p95']:.1f} ms, p99 {e2e['latency_ms']['p99']:.1f} ms. "
            f"Worker start to ready {e2e['start_to_ready_s']:.2f} s; peak RSS "
            f"{e2e['peak_rss_mb']:.0f} MB.",
        ]
    lines += ["", "| target | goal | measured | met |", "|---|---:|---:|:---:|"]
    for name, row in result["targets"].items():
        lines.append(
            f"| {name} | {row['target']:,} | {row['measured']:,.3g} | "
            f"{'yes' if row['met'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"
