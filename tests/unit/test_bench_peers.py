"""What users would write instead, without Kafka: the peers' labels, command lines, the
comparison with the worker and its report and chart."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from sentistream.bench.e2e import Session
from sentistream.bench.labels import parse_labels
from sentistream.bench.peers.common import PerRecordModel, label_value, parse_args
from sentistream.bench.peers.measure import (
    PLAIN_LOOP,
    QUIX_APP,
    SRC,
    peer_command,
    peer_environment,
    run_peers,
)
from sentistream.bench.peers.plot import peers_chart
from sentistream.bench.peers.report import peer_comparison, peer_section
from sentistream.bench.report import render_markdown, write_report
from sentistream.inference import SentimentModel
from tests.unit.test_bench import result as bench_result

SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "models" / "sentistream-lstm"
MODEL_INFO = {"name": "m", "version": "1", "sha256": "ab" * 32}

# -- the label a peer writes ------------------------------------------------------------------


def test_a_peers_label_is_read_back_as_the_workers_is():
    value = label_value(
        {"id": "peer-7", "text": "so happy"},
        "positive",
        {"negative": 0.1234567, "positive": 0.8765433},
        MODEL_INFO,
        event_ms=1_700_000_000_123,
        now_ms=1_700_000_000_456.7,
    )
    assert value == {
        "id": "peer-7",
        "text": "so happy",
        "label": "positive",
        "probabilities": {"negative": 0.123457, "positive": 0.876543},
        "model": MODEL_INFO,
        "event_time": "2023-11-14T22:13:20.123+00:00",
        "labeled_at": "2023-11-14T22:13:20.456+00:00",
    }
    (label,) = parse_labels([b"1700000000999\t" + json.dumps(value).encode()])
    assert (label.id, label.appended_ms, label.event_ms) == (
        "peer-7",
        1_700_000_000_999,
        1_700_000_000_123,
    )


@pytest.mark.parametrize("event_ms", [None, -1])
def test_a_record_without_a_timestamp_has_no_event_time(event_ms: int | None):
    value = label_value({"id": 1, "text": "x"}, "negative", {}, MODEL_INFO, event_ms, 0.0)
    assert value["event_time"] is None
    assert value["id"] == 1


def test_the_per_record_model_labels_as_the_served_model_does():
    texts = ["I love this so much", "worst day ever, everything broke", "ok"]
    peer = PerRecordModel(SHIPPED_MODEL)
    served = SentimentModel.load(SHIPPED_MODEL, threads=1)
    assert peer.info == {
        "name": served.manifest.name,
        "version": served.manifest.version,
        "sha256": served.sha256,
    }
    for text, expected in zip(texts, served.predict(texts), strict=True):
        label, probabilities = peer.classify(text)
        assert label == expected.label
        assert probabilities == pytest.approx(expected.probabilities, abs=1e-5)
    value = peer.label({"id": "a", "text": texts[0]}, 5, 10.0)
    assert value["label"] == served.predict(texts[:1])[0].label
    assert set(value["probabilities"]) == set(served.labels)


# -- command lines -----------------------------------------------------------------------------


def test_a_peer_is_started_with_its_topics_model_and_group():
    topics = {"input": "t-in", "output": "t-out", "dlq": "t-dlq"}
    command = peer_command(QUIX_APP, "/venv/bin/python", "127.0.0.1:9", topics, Path("m"))
    assert command[:3] == ["/venv/bin/python", "-m", "sentistream.bench.peers.quix_app"]
    args = parse_args("peer", command[3:])
    assert (args.bootstrap, args.input, args.output) == ("127.0.0.1:9", "t-in", "t-out")
    assert (args.model_dir, args.group, args.count, args.threads) == (Path("m"), "g-t-in", 0, 1)
    counted = peer_command(PLAIN_LOOP, "python", "b", topics, Path("m"), count=200)
    assert parse_args("peer", counted[3:]).count == 200


def test_a_peer_runs_this_checkouts_code_first():
    env = peer_environment({"PYTHONPATH": f"/a{os.pathsep}/b", "HOME": "/h"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(SRC), "/a", "/b"]
    assert env["HOME"] == "/h"
    assert (SRC / "sentistream" / "bench" / "peers" / "quix_app.py").is_file()
    assert peer_environment({})["PYTHONPATH"] == str(SRC)


def test_peers_are_not_run_over_a_secured_connection_and_say_why():
    broker = SimpleNamespace(connection=SimpleNamespace(security_protocol="SASL_SSL"))
    session = cast(Session, SimpleNamespace(broker=broker))
    out = run_peers(session, Path("m"), ["a"], quix_python=None, log=lambda _: None)
    assert out["runs"] == []
    assert [item["name"] for item in out["not_run"]] == [PLAIN_LOOP.name, QUIX_APP.name]
    assert all("PLAINTEXT only" in item["reason"] for item in out["not_run"])


# -- the comparison ----------------------------------------------------------------------------


def peer_run(key: str, name: str, per_s: float, tweets: int = 20_000) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "library": f"{key} 1.0",
        "tweets": tweets,
        "throughput_per_s": per_s,
        "peak_rss_mb": 150.0,
        "cpu_s": {"peer": tweets * 1e-3, "broker": 3.0},
    }


def with_peers(runs: list[dict[str, Any]], not_run: list[dict[str, str]]) -> dict[str, Any]:
    run = bench_result()
    e2e = run["models"][0]["end_to_end"]
    e2e.append({**e2e[0], "kafka_client": "confluent"})
    e2e[1]["backlog"] = {**e2e[0]["backlog"], "throughput_per_s": 8_000.0}
    run["peers"] = {"tweets": 20_000, "model_dir": "models/m", "runs": runs, "not_run": not_run}
    return run


def test_the_worker_is_compared_with_each_peer_and_judged_against_the_quix_app():
    run = with_peers(
        [
            peer_run("plain_loop", "plain kafka-python loop", 500.0),
            peer_run("quix_app", "Quix Streams app (per-record apply)", 2_000.0),
        ],
        [],
    )
    comparison = peer_comparison(run)
    assert comparison is not None
    assert [row["tweets_per_s"] for row in comparison["rows"]] == [500.0, 2_000.0, 5_000.0, 8_000.0]
    assert comparison["rows"][0]["cpu_us_per_tweet"] == pytest.approx(1_000.0)
    assert comparison["rows"][2]["cpu_us_per_tweet"] == pytest.approx(9.0 / 50_000 * 1e6)
    ratios = {(r["worker"], r["peer"]): r["ratio"] for r in comparison["ratios"]}
    assert ratios[("sentistream worker (kafka-python)", "plain kafka-python loop")] == 10.0
    assert ratios[("sentistream worker (confluent)", "Quix Streams app (per-record apply)")] == 4.0
    targets = {
        row["target"]: (row["goal"], row["measured"], row["met"]) for row in comparison["targets"]
    }
    assert targets == {
        "sentistream worker (kafka-python) / Quix app, tweets/s": (3.0, 2.5, False),
        "sentistream worker (confluent) / Quix app, tweets/s": (5.0, 4.0, False),
    }
    markdown = "\n".join(peer_section(comparison))
    assert "| plain kafka-python loop | plain_loop 1.0 | 20,000 | 500 | 1,000 | 150 |" in markdown
    assert "| sentistream worker (confluent) | 16.0x | 4.0x |" in markdown
    assert (
        "| sentistream worker (kafka-python) / Quix app, tweets/s | ≥ 3x | 2.5x | no |" in markdown
    )
    assert "on 20,000 tweets, the worker on its 50,000-tweet backlog" in markdown


def test_a_quix_app_not_run_is_reported_with_its_reason_and_no_verdict():
    run = with_peers(
        [peer_run("plain_loop", "plain kafka-python loop", 500.0)],
        [{"name": "Quix Streams app (per-record apply)", "reason": "no --quix-python given"}],
    )
    comparison = peer_comparison(run)
    assert comparison is not None
    assert all(row["measured"] is None and row["met"] is None for row in comparison["targets"])
    markdown = "\n".join(peer_section(comparison))
    assert "Quix Streams app (per-record apply): not run: no --quix-python given" in markdown
    assert "| not run | n/a |" in markdown


def test_a_run_without_peers_has_no_comparison(tmp_path: Path):
    assert peer_comparison(bench_result()) is None
    assert peer_section(None) == []
    written = write_report(tmp_path, bench_result(), bucket_size=32)
    assert "peer_comparison" not in written
    assert "What users would write instead" not in (tmp_path / "bench.md").read_text()


def test_the_comparison_is_in_bench_json_and_bench_md_and_drawn(tmp_path: Path):
    run = with_peers([peer_run("quix_app", "Quix Streams app (per-record apply)", 1_000.0)], [])
    written = write_report(tmp_path, run, bucket_size=32)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["peer_comparison"] == written["peer_comparison"]
    assert [row["met"] for row in saved["peer_comparison"]["targets"]] == [True, True]
    markdown = (tmp_path / "bench.md").read_text()
    assert "### What users would write instead (issue 18)" in markdown
    assert render_markdown(saved, 32) == markdown
    chart = peers_chart(saved["peer_comparison"], tmp_path / "peers.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_quix_interpreter_is_the_given_one_else_the_made_one_else_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from sentistream.cli import bench as bench_cli

    monkeypatch.setattr(bench_cli, "PROJECT_ROOT", tmp_path)
    missing = bench_cli._quix(None)
    assert missing["quix_python"] is None
    assert "make quix-venv" in missing["quix_missing"]
    made = tmp_path / bench_cli.QUIX_PYTHON
    made.parent.mkdir(parents=True)
    made.touch()
    assert bench_cli._quix(None) == {"quix_python": made}
    assert bench_cli._quix(Path("/x/python")) == {"quix_python": Path("/x/python")}
