"""The commands a person meets first: flag names, help, predict, produce, tail, create-topics.

Kafka clients are replaced by small fakes here (these tests check the commands' own behaviour);
the integration tests run the same commands against a real broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import kafka
import numpy as np
import pytest
from click.testing import CliRunner, Result

from sentistream.cli import cli, kafka_tools, options
from sentistream.cli import connect as cli_connect
from sentistream.cli import model as model_commands
from sentistream.cli.settings_options import FloatRange, IntRange, Option
from sentistream.inference import Prediction
from sentistream.worker.backends.kafka_python import admin as kafka_python_admin
from sentistream.worker.backends.kafka_python import tools as kafka_tools_clients
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "sentistream-lstm"
DEMO = ROOT / "examples" / "demo-tweets.csv"
OWNED = sorted(cli.commands)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def broker_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands probe the bootstrap servers before building a client (a fake here)."""
    monkeypatch.setattr(cli_connect, "probe", lambda servers, timeout_s=1.0: None)


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def ok(*args: str, stdin: str | None = None) -> Result:
    result = run(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result


# --------------------------------------------------------------------------- flags and help


def _options(name: str) -> Iterator[click.Option]:
    for param in cli.commands[name].params:
        if isinstance(param, click.Option) and not param.hidden:
            yield param


@pytest.mark.parametrize("name", OWNED)
def test_every_option_has_help_and_every_number_a_minimum(name: str) -> None:
    for option in _options(name):
        if "--help" in option.opts:
            continue
        assert option.help, f"{name} {option.opts[0]} has no help text"
        if option.type in (click.INT, click.FLOAT):
            pytest.fail(f"{name} {option.opts[0]} is a number without a minimum")
        if isinstance(option.type, IntRange | FloatRange):
            assert option.type.min is not None, f"{name} {option.opts[0]}"


@pytest.mark.parametrize("name", OWNED)
def test_help_shows_the_variable_of_every_option_that_reads_one(name: str) -> None:
    text = " ".join(ok(name, "--help").output.split())
    for option in _options(name):
        if option.envvar:
            assert option.show_envvar, f"{name} {option.opts[0]}"
            assert f"env var: {option.envvar}" in text.replace("- ", "-")


@pytest.mark.parametrize(
    ("command", "shown", "hidden"),
    [
        ("predict", "--model-dir", "--model"),
        ("evaluate", "--model-dir", "--model"),
        ("bench", "--model-dir", "--model"),
        ("export", "--keras-dir", "--model"),
        ("bench", "--keras-dir", "--keras-model"),
        ("produce", "--input-topic", "--topic"),
        ("tail", "--output-topic", "--topic"),
        ("worker", "--model-dir", "--model"),
        ("worker", "--input-topic", "--topic"),
    ],
)
def test_one_name_per_thing_and_old_names_hidden(command: str, shown: str, hidden: str) -> None:
    help_text = ok(command, "--help").output
    words = set(help_text.replace(",", " ").split())
    assert shown in words
    assert hidden not in words
    option = next(p for p in cli.commands[command].params if shown in p.opts)
    assert isinstance(option, Option)
    assert hidden in option.opts  # still accepted


def test_the_worker_names_the_same_settings() -> None:
    names = {opt for param in cli.commands["worker"].params for opt in param.opts}
    assert {"--model-dir", "--input-topic", "--output-topic", "--bootstrap-servers"} <= names


def test_the_worker_takes_the_older_spellings_the_readme_promises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """README: "Older spellings (`--model`, `--topic`, ...) still work"."""
    from sentistream.worker.app import main as worker_main

    seen = []

    def run_worker(settings: WorkerSettings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(worker_main, "run_worker", run_worker)
    monkeypatch.setattr(worker_main, "exit_process", sys.exit)
    ok("worker", "--model", str(SHIPPED), "--topic", "raw-tweets", "--output-topic", "out")
    (settings,) = seen
    assert (settings.model_dir, settings.input_topic) == (SHIPPED, "raw-tweets")
    assert settings.output_topic == "out"


def test_the_worker_command_ends_the_process_through_exit_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not sys.exit: the interpreter's teardown after "stopped cleanly" costs seconds."""
    from sentistream.worker.app import main as worker_main

    codes: list[int] = []

    def exit_process(code: int) -> None:
        codes.append(code)
        sys.exit(code)

    monkeypatch.setattr(worker_main, "run_worker", lambda settings: 3)
    monkeypatch.setattr(worker_main, "exit_process", exit_process)
    assert run("worker").exit_code == 3
    assert codes == [3]


def test_an_unknown_variable_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTISTREAM_MODELDIR", str(SHIPPED))
    result = ok("predict", "--no-header", "fine")
    assert result.stderr.startswith(
        "warning: SENTISTREAM_MODELDIR is not a sentistream setting (ignored); "
        "did you mean SENTISTREAM_MODEL_DIR?"
    )


def test_the_default_model_is_found_from_any_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert options.default_model_dir() == SHIPPED
    assert ok("predict", "--no-header", "what a lovely day").output.startswith("positive")


def test_the_model_dir_alias_still_works() -> None:
    assert ok("predict", "--model", str(SHIPPED), "--no-header", "hate it").output.startswith(
        "negative"
    )


# --------------------------------------------------------------------------- predict


def test_predict_reads_stdin_one_text_per_line_with_a_header() -> None:
    result = ok("predict", stdin="I love this so much\n  \nworst service ever\n")
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["label", "negative", "neutral", "positive", "text"]
    assert [row.split()[0] for row in rows] == ["positive", "empty_text", "negative"]
    assert rows[1].split()[1:] == ["-", "-", "-"]
    assert rows[0].endswith("I love this so much")


def test_predict_dash_mixes_arguments_and_stdin_in_order() -> None:
    result = ok("predict", "--json", "first", "-", "last", stdin="from stdin\n\n")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["first", "from stdin", "", "last"]
    assert lines[2] == {"text": "", "label": None, "reason": "empty_text"}
    assert set(lines[0]["probabilities"]) == {"negative", "neutral", "positive"}


def test_predict_with_only_empty_texts_runs_no_model_call() -> None:
    """An empty batch crashed ONNX Runtime (a segmentation fault) before it was guarded."""
    result = ok("predict", "--no-header", stdin="\n   \n")
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["empty_text", "-", "-", "-"],
        ["empty_text", "-", "-", "-"],
    ]


def test_predict_without_texts_on_a_terminal_says_how() -> None:
    """With a terminal as stdin (a pseudo-terminal here), predict does not wait for input."""
    leader, follower = os.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sentistream.cli", "predict"],
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == 2
    assert "Error: give TEXTS, or pipe texts into stdin one per line (or pass -)" in done.stderr


class ThreeLabels:
    """A model with the labels the next release may have; predict must not assume two."""

    labels = ("negative", "neutral", "positive")

    def predict(self, texts: list[str]) -> list[Prediction]:
        rows = np.tile(np.array([0.2, 0.5, 0.3]), (len(texts), 1))
        return [
            Prediction("neutral", dict(zip(self.labels, map(float, row), strict=True)))
            for row in rows
        ]


def test_predict_shows_every_label_the_model_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_commands, "_load_model", lambda _folder: ThreeLabels())
    header, row, empty = ok("predict", "meh", " ").stdout.splitlines()
    assert header.split() == ["label", "negative", "neutral", "positive", "text"]
    assert row.split() == ["neutral", "0.200", "0.500", "0.300", "meh"]
    assert empty.split() == ["empty_text", "-", "-", "-"]


# --------------------------------------------------------------------------- produce


@dataclass
class FakeFuture:
    error: Exception | None = None

    def add_errback(self, callback: Callable[[Exception], Any]) -> FakeFuture:
        if self.error is not None:
            callback(self.error)
        return self


@dataclass
class FakeProducer:
    config: dict[str, Any]
    fail_every: int = 0
    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    closed: bool = False

    def send(self, topic: str, key: bytes, value: bytes) -> FakeFuture:
        self.sent.append((topic, key, value))
        failing = self.fail_every and len(self.sent) % self.fail_every == 0
        return FakeFuture(kafka.errors.KafkaTimeoutError("no ack") if failing else None)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    made: list[FakeProducer] = []

    def make(**config: Any) -> FakeProducer:
        made.append(FakeProducer(config, fail_every=config.pop("_fail_every", 0)))
        return made[-1]

    monkeypatch.setattr(kafka_tools_clients, "KafkaProducer", make)
    topics = {"tweets": 3, "raw": 3, "from-env": 3}
    monkeypatch.setattr(
        kafka_tools_clients, "KafkaAdminClient", lambda **config: FakeAdmin(topics, **config)
    )
    return made


@pytest.mark.parametrize("flag", ["--input-topic", "--topic"])
def test_produce_sends_to_the_input_topic(producers: list[FakeProducer], flag: str) -> None:
    result = ok("produce", "--file", str(DEMO), flag, "raw", "--limit", "3")
    (producer,) = producers
    assert [topic for topic, _, _ in producer.sent] == ["raw"] * 3
    assert producer.config["bootstrap_servers"] == ["localhost:9092"]
    assert producer.closed
    assert "sent 3 tweets to raw" in result.stderr
    assert "\r" not in result.stderr, "a progress bar outside a terminal"


def test_produce_reads_its_topic_from_the_worker_variable(
    producers: list[FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTISTREAM_INPUT_TOPIC", "from-env")
    monkeypatch.setenv("SENTISTREAM_BOOTSTRAP_SERVERS", "a:1,b:2")
    ok("produce", "--file", str(DEMO), "--limit", "1")
    assert producers[0].sent[0][0] == "from-env"
    assert producers[0].config["bootstrap_servers"] == ["a:1", "b:2"]


def test_produce_fails_when_kafka_does_not_acknowledge(
    producers: list[FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        kafka_tools_clients,
        "KafkaProducer",
        lambda **config: FakeProducer(config, fail_every=2),
    )
    result = run("produce", "--file", str(DEMO), "--limit", "10")
    assert result.exit_code == 1
    assert "Error: 5 of 10 tweets were not acknowledged by Kafka" in result.stderr


def test_produce_to_a_missing_topic_refuses_before_sending(producers: list[FakeProducer]) -> None:
    """The broker would create it (auto.create.topics.enable) with its own partition count."""
    result = run("produce", "--file", str(DEMO), "--input-topic", "tweetz")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: topic 'tweetz' does not exist on localhost:9092; create it with "
        "`sentistream create-topics --bootstrap-servers localhost:9092 --input-topic tweetz` "
        "(or start the worker with --create-topics)"
    )
    assert producers == []


def test_produce_never_has_the_broker_create_a_topic(producers: list[FakeProducer]) -> None:
    ok("produce", "--file", str(DEMO), "--limit", "1")
    assert producers[0].config["allow_auto_create_topics"] is False


# --------------------------------------------------------------------------- tail


@dataclass
class FakeRecord:
    value: bytes | None


class FakeConsumer:
    def __init__(self, batches: list[list[bytes | None]], **config: Any) -> None:
        self.topic = ""
        self.config = config
        self.batches = batches
        self.closed = False
        self.calls: list[str] = []

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set() if topic == "missing" else {0, 1, 2}

    def assign(self, partitions: list[kafka.TopicPartition]) -> None:
        (self.topic,) = {tp.topic for tp in partitions}
        self.calls.append(f"assign {sorted(tp.partition for tp in partitions)}")

    def seek_to_end(self, *partitions: kafka.TopicPartition) -> None:
        self.calls.append(f"seek_to_end {len(partitions)}")

    def seek_to_beginning(self, *partitions: kafka.TopicPartition) -> None:
        self.calls.append(f"seek_to_beginning {len(partitions)}")

    def position(self, partition: kafka.TopicPartition, timeout_ms: int) -> int:
        self.calls.append(f"position {partition.partition}")
        return 0

    def poll(self, timeout_ms: int) -> dict[str, list[FakeRecord]]:
        values = self.batches.pop(0) if self.batches else []
        return {"tp": [FakeRecord(v) for v in values]} if values else {}

    def close(self) -> None:
        self.closed = True


def _label(label: str, partition: int, offset: int) -> bytes:
    return json.dumps(
        {
            "text": "a tweet",
            "label": label,
            "probabilities": {"negative": 0.1, "positive": 0.9},
            "source": {"topic": "tweets", "partition": partition, "offset": offset},
            "event_time": "2026-01-01T00:00:00+00:00",
            "labeled_at": "2026-01-01T00:00:00.050+00:00",
        }
    ).encode()


@pytest.fixture
def consumers(monkeypatch: pytest.MonkeyPatch) -> list[FakeConsumer]:
    made: list[FakeConsumer] = []
    batches: list[list[bytes | None]] = []

    def make(**config: Any) -> FakeConsumer:
        made.append(FakeConsumer(batches, **config))
        return made[-1]

    monkeypatch.setattr(kafka_tools_clients, "KafkaConsumer", make)
    monkeypatch.setattr(kafka_tools, "TAIL_HINT_AFTER_S", 0.0)
    made.append(FakeConsumer(batches))  # made[0].batches: the script
    return made


def test_tail_explains_its_columns_and_prints_one_line_per_label(
    consumers: list[FakeConsumer],
) -> None:
    consumers[0].batches.extend([[_label("positive", 2, 0)], [_label("negative", 0, 5)]])
    result = ok("tail", "--output-topic", "labels", "--max", "2")
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["label", "prob", "source", "text"]
    assert first.split() == ["positive", "0.900", "p2@0", "a", "tweet"]
    assert second.startswith("negative")
    assert "p2@0: the tweet was offset 0 of partition 2" in result.stderr
    assert consumers[1].topic == "labels"
    assert consumers[1].config["auto_offset_reset"] == "latest"
    assert consumers[1].closed


@pytest.mark.parametrize(
    ("flags", "seek"), [([], "seek_to_end"), (["--from-beginning"], "seek_to_beginning")]
)
def test_tail_is_at_the_end_or_the_start_of_every_partition_before_its_header(
    consumers: list[FakeConsumer], flags: list[str], seek: str
) -> None:
    """So a script may start a producer once tail's header is out and miss no label."""
    consumers[0].batches.append([_label("positive", 0, 0)])
    ok("tail", *flags, "--max", "1")
    assert consumers[1].calls == [
        "assign [0, 1, 2]",
        f"{seek} 3",
        "position 0",
        "position 1",
        "position 2",
    ]


def test_tail_on_a_missing_topic_says_so_and_how_to_create_it(
    consumers: list[FakeConsumer],
) -> None:
    result = run(
        "tail", "--output-topic", "missing", "--bootstrap-servers", "k:9093", "--timeout", "0.01"
    )
    assert result.exit_code == 1
    assert result.stdout == ""  # no header
    assert result.stderr.strip() == (
        "Error: topic 'missing' does not exist on k:9093; create it with `sentistream "
        "create-topics --bootstrap-servers k:9093 --output-topic missing` (or start the "
        "worker with --create-topics)"
    )
    assert consumers[1].closed
    assert consumers[1].config["allow_auto_create_topics"] is False


def test_tail_hints_at_from_beginning_when_nothing_arrives(consumers: list[FakeConsumer]) -> None:
    result = ok("tail", "--timeout", "0.01", "--json")
    assert "add --from-beginning to see the earlier ones" in result.stderr
    assert result.stdout == ""  # --json: values only, no header


def test_tail_summary_exits_non_zero_without_labels(consumers: list[FakeConsumer]) -> None:
    result = run("tail", "--from-beginning", "--timeout", "0.01", "--summary")
    assert result.exit_code == 1
    assert "no labels received" in result.stderr
    assert "is a worker running and a producer sending?" in result.stderr


def test_tail_summary_exits_zero_with_labels(consumers: list[FakeConsumer]) -> None:
    consumers[0].batches.append([_label("positive", 0, 0), b"not a label"])
    result = ok("tail", "--topic", "old-name", "--max", "2", "--summary", "--no-header")
    assert "1 labels: positive 1 (100%)" in result.stderr
    assert consumers[1].topic == "old-name"
    assert "(not a sentistream label)" in result.stdout


# --------------------------------------------------------------------------- create-topics


class FakeAdmin:
    def __init__(self, topics: dict[str, int], **config: Any) -> None:
        self.topics = topics
        self.created: dict[str, Any] = {}

    def list_topics(self) -> list[str]:
        return list(self.topics)

    def describe_topics(self) -> list[dict[str, Any]]:
        return [{"name": n, "partitions": [{}] * count} for n, count in self.topics.items()]

    def create_topics(self, topics: dict[str, Any]) -> None:
        self.created.update(topics)

    def wait_for_topics(self, names: list[str], timeout_ms: int) -> None:
        assert set(names) <= set(self.created)

    def close(self) -> None:
        pass


def test_create_topics_creates_the_missing_and_warns_about_other_partition_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admins: list[FakeAdmin] = []

    def make(**config: Any) -> FakeAdmin:
        admins.append(FakeAdmin({"tweets": 1, "tweets.dlq": 1, "other": 9}, **config))
        return admins[-1]

    monkeypatch.setattr(kafka_tools_clients, "KafkaAdminClient", make)
    # The creating is the worker's (which imported the client before the patch).
    monkeypatch.setattr(kafka_python_admin, "KafkaAdminClient", make)
    result = ok("create-topics", "--partitions", "6")
    created = {name: spec for admin in admins for name, spec in admin.created.items()}
    assert created == {"tweet-labels": {"num_partitions": 6, "replication_factor": 1}}
    lines = result.stderr.splitlines()
    assert "tweets: exists (1 partition)" in lines
    assert "tweet-labels: created (6 partitions)" in lines
    assert "tweets.dlq: exists (1 partition)" in lines
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: tweets has 1 partition, not the 6 asked for")


def test_tail_reads_committed_labels_when_the_worker_runs_exactly_once(
    consumers: list[FakeConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    consumers[0].batches.extend([[_label("positive", 0, 0)]] * 3)
    ok("tail", "--max", "1")
    assert consumers[1].config["isolation_level"] == "read_uncommitted"
    monkeypatch.setenv("SENTISTREAM_PROCESSING_GUARANTEE", "exactly-once")
    ok("tail", "--max", "1")
    assert consumers[2].config["isolation_level"] == "read_committed"
    ok("tail", "--max", "1", "--isolation-level", "read_uncommitted")
    assert consumers[3].config["isolation_level"] == "read_uncommitted"


def test_every_kafka_command_takes_the_same_connection_settings() -> None:
    from sentistream.cli.settings_options import is_secret
    from sentistream.connection import KafkaConnection

    expected = {
        "--" + name.replace("_", "-")
        for name, field in KafkaConnection.model_fields.items()
        if not is_secret(field)
    }
    for command in ("worker", "produce", "tail", "create-topics", "bench"):
        params = cli.commands[command].params
        flags = {opt for param in params for opt in param.opts}
        assert expected <= flags, (command, expected - flags)
        assert "--sasl-password" not in flags
