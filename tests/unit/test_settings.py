"""Worker settings: flag over environment variable over default, and validation as usage errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from pydantic import ValidationError

from sentistream.settings_cli import build_settings, settings_options
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings


@click.command()
@settings_options(WorkerSettings, ENV_PREFIX)
def show(**flags: Any) -> None:
    """Print the settings the flags and environment give, as JSON."""
    click.echo(build_settings(WorkerSettings, flags).model_dump_json())


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(show, list(args))


def settings(*args: str) -> dict[str, Any]:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = json.loads(result.output)
    return loaded


def test_defaults():
    got = settings()
    assert got["bootstrap_servers"] == "localhost:9092"
    assert got["input_topic"] == "tweets"
    assert got["max_batch_size"] == 256
    assert got["max_wait_ms"] == WorkerSettings.model_fields["max_wait_ms"].default
    assert got["input_format"] == "auto"
    assert got["model_dir"] == "models/sentiment140-lstm"
    assert got == json.loads(WorkerSettings().model_dump_json())


def test_an_environment_variable_beats_the_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SENTISTREAM_MAX_BATCH_SIZE", "64")
    monkeypatch.setenv("SENTISTREAM_INPUT_TOPIC", "raw-tweets")
    monkeypatch.setenv("SENTISTREAM_INPUT_FORMAT", "json")
    monkeypatch.setenv("SENTISTREAM_MODEL_DIR", "/models/v2")
    monkeypatch.setenv("SENTISTREAM_SHUTDOWN_TIMEOUT_S", "2.5")
    got = settings()
    assert got["max_batch_size"] == 64
    assert got["input_topic"] == "raw-tweets"
    assert got["input_format"] == "json"
    assert got["model_dir"] == "/models/v2"
    assert got["shutdown_timeout_s"] == 2.5
    assert got["output_topic"] == "tweet-labels"  # untouched fields keep their default


def test_a_flag_beats_the_environment_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SENTISTREAM_MAX_BATCH_SIZE", "64")
    monkeypatch.setenv("SENTISTREAM_INPUT_FORMAT", "json")
    monkeypatch.setenv("SENTISTREAM_MODEL_DIR", "/models/v2")
    monkeypatch.setenv("SENTISTREAM_BOOTSTRAP_SERVERS", "env:9092")
    got = settings(
        "--max-batch-size",
        "32",
        "--input-format",
        "text",
        "--model-dir",
        "/models/v3",
        "--shutdown-timeout-s",
        "1.5",
    )
    assert got["max_batch_size"] == 32
    assert got["input_format"] == "text"
    assert got["model_dir"] == "/models/v3"
    assert got["shutdown_timeout_s"] == 1.5
    assert got["bootstrap_servers"] == "env:9092"  # no flag: the variable still applies


def test_build_settings_types_and_freezes():
    built = build_settings(WorkerSettings, {"model_dir": Path("m"), "max_wait_ms": None})
    assert built.model_dir == Path("m")
    # a flag left out (None) falls through to the default
    assert built.max_wait_ms == WorkerSettings.model_fields["max_wait_ms"].default
    with pytest.raises(ValidationError):
        built.max_batch_size = 1  # type: ignore[misc]


def test_every_field_has_a_flag_naming_its_variable():
    result = invoke("--help")
    assert result.exit_code == 0
    # click wraps help text; compare with the white space taken out
    text = "".join(result.output.split())
    for name in WorkerSettings.model_fields:
        assert "--" + name.replace("_", "-") in text
        assert f"env:{ENV_PREFIX}{name.upper()}" in text


@pytest.mark.parametrize(
    ("args", "env", "field"),
    [
        (["--max-batch-size", "0"], {}, "max_batch_size"),
        (["--max-batch-size", "5000"], {}, "max_batch_size"),
        (["--metrics-port", "70000"], {}, "metrics_port"),
        (["--shutdown-timeout-s", "0"], {}, "shutdown_timeout_s"),
        ([], {"SENTISTREAM_MAX_BATCH_SIZE": "0"}, "max_batch_size"),
        ([], {"SENTISTREAM_MAX_WAIT_MS": "soon"}, "max_wait_ms"),
        ([], {"SENTISTREAM_INPUT_FORMAT": "xml"}, "input_format"),
        ([], {"SENTISTREAM_LOG_LEVEL": "LOUD"}, "log_level"),
    ],
)
def test_an_invalid_value_is_a_usage_error_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], field: str
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = invoke(*args)
    assert result.exit_code == 2, result.output  # click.UsageError, not a traceback
    assert isinstance(result.exception, SystemExit)
    assert "invalid settings" in result.output
    assert field in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--max-batch-size", "many"],
        ["--input-format", "xml"],
        ["--no-such-flag", "1"],
    ],
)
def test_a_flag_click_cannot_parse_is_a_usage_error(args: list[str]):
    result = invoke(*args)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)


def test_a_valid_flag_rescues_an_invalid_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SENTISTREAM_MAX_BATCH_SIZE", "0")
    assert settings("--max-batch-size", "8")["max_batch_size"] == 8


def test_build_settings_raises_usage_error_directly():
    with pytest.raises(click.UsageError, match="max_wait_ms"):
        build_settings(WorkerSettings, {"max_wait_ms": -1})
