"""The benchmark's machinery, without Kafka: counting labels, pacing, /proc, the report."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sentistream.bench import kcat
from sentistream.bench.labels import Label, count_labels, latencies_ms, parse_labels
from sentistream.bench.pace import due, pace
from sentistream.bench.procstat import CpuMeter, cpu_seconds, peak_rss_mb
from sentistream.bench.report import one_thread_ceiling, render_markdown, write_report
from sentistream.bench.run import expand_kafka_clients
from sentistream.cli import cli
from tests.unit.fakes import FakeClock

# -- labels on the output topic ---------------------------------------------------------------


def label_line(appended_ms: int, tweet_id: str, event: str | None, text: str = "t") -> bytes:
    value = {"id": tweet_id, "text": text, "label": "positive", "event_time": event}
    return f"{appended_ms}\t".encode() + json.dumps(value, ensure_ascii=False).encode()


def test_labels_are_parsed_from_kcat_lines_with_non_ascii_text():
    line = label_line(
        1_700_000_000_500, "a1", "2023-11-14T22:13:20.123+00:00", "caf\u00e9\u2028\U0001f600"
    )
    (label,) = parse_labels([line])
    assert label == Label("a1", 1_700_000_000_500, 1_700_000_000_123)


def test_the_count_is_distinct_ids_of_the_run_and_the_rate_uses_the_stored_times():
    labels = [
        Label("b-0", 10_000, None),
        Label("b-1", 10_500, None),
        Label("b-1", 12_000, None),  # a duplicate (redelivery): counted once, its time ignored
        Label("other-7", 99_000, None),  # another run's label: ignored
        Label("b-2", 12_000, None),
    ]
    count = count_labels(labels, {"b-0", "b-1", "b-2", "b-3"})
    assert (count.expected, count.distinct, count.duplicates, count.missing) == (4, 3, 1, 1)
    assert count.span_s == 2.0
    assert count.throughput_per_s == 1.5


def test_latency_is_stored_time_minus_produce_time_once_per_tweet():
    labels = [Label("x", 1_050, 1_000), Label("x", 1_400, 1_000), Label("y", 2_020, 2_000)]
    assert sorted(latencies_ms(labels, {"x", "y"})) == [20.0, 50.0]


# -- the paced producer ------------------------------------------------------------------------


def test_due_grows_with_time_and_stops_at_the_total():
    assert due(1_000, 0.0, 50) == 1
    assert due(1_000, 0.0105, 50) == 11
    assert due(1_000, 5.0, 50) == 50


def test_pace_writes_a_milliseconds_worth_at_a_time_at_the_rate():
    clock = FakeClock(monotonic=0.0)
    out = io.BytesIO()
    writes: list[tuple[float, int]] = []

    class Recording(io.BytesIO):
        def write(self, data: Any) -> int:
            writes.append((clock.monotonic(), data.count(b"\n")))
            return out.write(data)

    lines = [f"k{n}\tv\n".encode() for n in range(100)]
    pace(lines, Recording(), rate=2_000, clock=clock.monotonic, sleep=clock.advance)
    assert out.getvalue() == b"".join(lines)
    # 100 lines at 2,000/s take 50 ms of (fake) time, about two lines a millisecond
    assert writes[-1][0] == pytest.approx(0.0495, abs=0.002)
    assert max(count for _, count in writes) <= 3


# -- /proc --------------------------------------------------------------------------------------


def test_cpu_seconds_reads_user_system_and_children_even_with_odd_process_names(tmp_path: Path):
    (tmp_path / "42").mkdir()
    fields = ["S"] + ["0"] * 10 + ["250", "150", "70", "30"] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text("42 (a (weird) name) " + " ".join(fields))
    assert cpu_seconds(42, proc=tmp_path) == pytest.approx(5.0)
    (tmp_path / "42" / "status").write_text("Name:\tx\nVmHWM:\t  125952 kB\nVmRSS:\t 1 kB\n")
    assert peak_rss_mb(42, proc=tmp_path) == 123.0


def test_the_cpu_meter_measures_this_process():
    import os

    meter = CpuMeter({"me": os.getpid()}).start()
    sum(i * i for i in range(300_000))
    assert meter.stop()["me"] >= 0.0


# -- kcat ---------------------------------------------------------------------------------------


def test_payload_lines_refuse_what_would_split_a_record(tmp_path: Path):
    path = tmp_path / "p.tsv"
    assert kcat.write_payload_file(path, [(b"k1", b'{"text": "a\\nb"}')]) == 1
    assert path.read_bytes() == b'k1\t{"text": "a\\nb"}\n'
    with pytest.raises(ValueError, match="newline"):
        kcat.write_payload_file(path, [(b"k", b"raw\nnewline")])


def test_a_missing_kcat_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(kcat.KcatMissingError, match="apt-get install -y kcat"):
        kcat.kcat()


def test_the_bench_command_stops_before_measuring_without_kcat(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setattr(shutil, "which", lambda _: None)
    data = tmp_path / "tweets.csv"
    data.write_text('"0","1","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","u","hello there"\n')
    result = CliRunner().invoke(cli, ["bench", "--data", str(data), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "apt-get install -y kcat" in result.output


# -- the report ---------------------------------------------------------------------------------


def ceiling_row(threads: str, name: str, batch: int, per_second: float) -> dict[str, Any]:
    return {"threads": threads, "name": name, "batch_size": batch, "per_second": per_second}


BUCKETS = "ONNX Runtime, length buckets of 32"
CALLS = "ONNX Runtime, one call per batch"


def result() -> dict[str, Any]:
    latency = [
        {
            "fraction": f,
            "offered_per_s": 1000 * f,
            "sent_per_s": 1000 * f,
            "latency_ms": {"p50": 5.0, "p95": 9.0, "p99": p99, "max": 30.0},
            "mean_batch": 3.0,
            "cpu_s": {"worker": 1.0, "broker": 0.5, "load generator (pacer)": 0.1},
        }
        for f, p99 in ((0.1, 15.0), (0.5, 60.0))
    ]
    return {
        "command": "sentistream bench",
        "date": "2026-11-29 15:00 UTC",
        "machine": {"cores": 2, "cpu": "cpu", "python": "3.11", "onnxruntime": "1"},
        "load_average_start": [4.0, 4.0, 4.0],
        "load_average_end": [4.0, 4.0, 4.0],
        "models": [
            {
                "model": {
                    "folder": "models/m",
                    "name": "m",
                    "version": "1",
                    "lstm_op": "LSTM",
                    "quantization": "none",
                },
                "mean_tokens": 12.0,
                "ceiling": [
                    ceiling_row("1 thread", BUCKETS, 256, 10_000.0),
                    ceiling_row("1 thread", BUCKETS, 512, 12_000.0),
                    ceiling_row("1 thread", CALLS, 256, 7_000.0),
                ],
                "stages": [{"stage": "decode", "tweets": 10, "us_per_tweet": 1.5}],
                "baselines": [],
                "end_to_end": [
                    {
                        "kafka_client": "kafka-python",
                        "start_to_ready_s": 1.0,
                        "peak_rss_mb": 120.0,
                        "backlog": {
                            "tweets": 50_000,
                            "labels_on_topic": 50_000,
                            "duplicates": 0,
                            "worker_labeled_total": 50_000.0,
                            "span_s": 10.0,
                            "throughput_per_s": 5_000.0,
                            "mean_batch": 256.0,
                            "cpu_s": {"worker": 9.0},
                        },
                        "latency": latency,
                    }
                ],
            }
        ],
        "scale_out": [
            {
                "workers": 2,
                "partitions": 4,
                "tweets": 50_000,
                "labels_on_topic": 50_000,
                "throughput_per_s": 6_000.0,
                "cpu_s": {"worker 1": 5.0},
            }
        ],
        "samples": {"models/m|kafka-python": {"0.1": [1.0, 2.0]}},
    }


def test_the_reference_ceiling_is_one_thread_buckets_at_batch_256():
    assert one_thread_ceiling(result()["models"][0]["ceiling"], 32) == 10_000.0


def test_the_report_judges_the_targets_against_the_reference_ceiling(tmp_path: Path):
    written = write_report(tmp_path, result(), bucket_size=32)
    met = {row["target"]: (row["measured"], row["met"]) for row in written["targets"]}
    assert met["end to end / one-thread ceiling (kafka-python)"] == (0.5, False)
    assert met["p99 at 10 % of peak, ms"] == (15.0, True)
    assert met["p99 at 50 % of peak, ms"] == (60.0, False)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert "samples" not in saved
    assert json.loads((tmp_path / "latency-samples.json").read_text())["models/m|kafka-python"]
    markdown = (tmp_path / "bench.md").read_text()
    assert "| backlog (kcat, before the clock) | 50,000 | 5,000 | 0.50 |" in markdown
    assert "| 10% | 100 | 100 | 5 | 9 | 15 | 30 | 3.0 |" in markdown
    assert "| 2 | 4 | 50,000 | 50,000 | 6,000 |" in markdown
    assert render_markdown(saved, 32) == markdown


def test_both_kafka_clients_expand_in_order_once_each():
    assert expand_kafka_clients(["both"]) == ("kafka-python", "confluent")
    assert expand_kafka_clients(["confluent", "both"]) == ("confluent", "kafka-python")
    assert expand_kafka_clients(["kafka-python"]) == ("kafka-python",)


def test_the_report_puts_each_clients_end_to_end_figures_in_one_table(tmp_path: Path):
    run = result()
    e2e = run["models"][0]["end_to_end"]
    e2e.append(
        {
            **e2e[0],
            "kafka_client": "confluent",
            "backlog": {**e2e[0]["backlog"], "throughput_per_s": 8_000.0},
        }
    )
    markdown = render_markdown(write_report(tmp_path, run, bucket_size=32), 32)
    assert "| model | client | backlog tweets/s |" in markdown
    assert "| models/m | kafka-python | 5,000 | 0.50 | 15 | 60 | 120 | 1.00 |" in markdown
    assert "| models/m | confluent | 8,000 | 0.80 | 15 | 60 | 120 | 1.00 |" in markdown
    assert "### End to end, `confluent`" in markdown
    targets = {
        (r["target"], r["where"]): r["met"]
        for r in write_report(tmp_path, run, bucket_size=32)["targets"]
    }
    assert targets[("end to end / one-thread ceiling (confluent)", "models/m, confluent")]
