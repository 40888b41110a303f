"""Worker settings: flag over environment variable over default, and validation as usage errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sentistream.cli.settings_options import (
    Option,
    build_settings,
    is_secret,
    settings_options,
    unknown_variables,
)
from sentistream.connection import ConnectionSettingsError
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
    assert got["model_dir"] == "models/sentistream-lstm"
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
    for name, field in WorkerSettings.model_fields.items():
        if is_secret(field):  # no flag: see the test below
            assert "--" + name.replace("_", "-") + " " not in result.output
            continue
        assert "--" + name.replace("_", "-") in text
        assert f"envvar:{ENV_PREFIX}{name.upper()}" in text
        assert field.description
        assert "".join(field.description.split()) in text


def test_the_sasl_password_has_no_flag_comes_from_its_variable_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
):
    assert "--sasl-password " not in invoke("--help").output
    assert invoke("--sasl-password", "x").exit_code != 0  # no such option
    monkeypatch.setenv("SENTISTREAM_SASL_PASSWORD", "hunter2-secret")
    built = WorkerSettings(security_protocol="SASL_SSL", sasl_username="alice")
    assert built.password() == "hunter2-secret"
    assert "hunter2" not in repr(built)
    assert "hunter2" not in built.describe()
    assert "hunter2" not in settings()["sasl_password"]
    assert built.client_config()["sasl_plain_password"] == "hunter2-secret"


def test_the_sasl_password_can_come_from_a_file(tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    built = WorkerSettings(
        security_protocol="SASL_SSL", sasl_username="alice", sasl_password_file=secret
    )
    assert built.client_config()["sasl_plain_password"] == "from-a-file"


def test_sasl_without_user_or_password_is_refused_before_connecting():
    with pytest.raises(ConnectionSettingsError, match="needs --sasl-username and a password"):
        WorkerSettings(security_protocol="SASL_SSL").client_config()


def test_mtls_needs_both_certificate_and_key(tmp_path: Path):
    with pytest.raises(ValidationError, match="go together"):
        WorkerSettings(ssl_certfile=tmp_path / "c.pem")


def test_hostname_verification_is_on_by_default_and_can_be_turned_off():
    assert settings()["ssl_check_hostname"] is True
    assert settings("--no-ssl-check-hostname")["ssl_check_hostname"] is False


@pytest.mark.parametrize(
    ("args", "env", "named", "value"),
    [
        (["--max-batch-size", "0"], {}, "'--max-batch-size'", "0 is not in the range 1<=x<=4096"),
        (["--max-batch-size", "5000"], {}, "'--max-batch-size'", "5000 is not in the range"),
        (["--metrics-port", "70000"], {}, "'--metrics-port'", "70000 is not in the range"),
        (["--shutdown-timeout-s", "0"], {}, "'--shutdown-timeout-s'", "0.0 is not in the range"),
        ([], {"SENTISTREAM_MAX_BATCH_SIZE": "0"}, "SENTISTREAM_MAX_BATCH_SIZE", "0 is not in"),
        (
            [],
            {"SENTISTREAM_MAX_WAIT_MS": "soon"},
            "SENTISTREAM_MAX_WAIT_MS",
            "'soon' is not a valid integer",
        ),
        (
            [],
            {"SENTISTREAM_INPUT_FORMAT": "xml"},
            "SENTISTREAM_INPUT_FORMAT",
            "'xml' is not one of",
        ),
        ([], {"SENTISTREAM_LOG_LEVEL": "LOUD"}, "SENTISTREAM_LOG_LEVEL", "'LOUD' is not one of"),
        (
            [],
            {"SENTISTREAM_SHUTDOWN_TIMEOUT_S": "x"},
            "SENTISTREAM_SHUTDOWN_TIMEOUT_S",
            "'x' is not a valid number",
        ),
    ],
)
def test_an_invalid_value_is_one_line_naming_where_it_came_from_and_the_value(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], named: str, value: str
):
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    result = invoke(*args)
    assert result.exit_code == 2, result.output  # click.UsageError, not a traceback
    assert isinstance(result.exception, SystemExit)
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.output
    assert f"Invalid value for {named}: {value}" in error[0]


@pytest.mark.parametrize("level", ["debug", "Debug", "DEBUG"])
def test_log_levels_in_any_case(monkeypatch: pytest.MonkeyPatch, level: str):
    assert settings("--log-level", level)["log_level"] == "DEBUG"
    monkeypatch.setenv("SENTISTREAM_LOG_LEVEL", level.lower())
    assert settings()["log_level"] == "DEBUG"


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
    with pytest.raises(click.UsageError, match="max_wait_ms=-1: must be ≥ 0"):
        build_settings(WorkerSettings, {"max_wait_ms": -1})


class _Checked(BaseSettings):
    """A setting with a check click cannot express: pydantic's error still names the source."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True)

    input_topic: str = Field("tweets", description="Topic.")

    @field_validator("input_topic")
    @classmethod
    def _no_spaces(cls, value: str) -> str:
        if " " in value:
            raise ValueError("no spaces in a topic name")
        return value


@click.command()
@settings_options(_Checked, ENV_PREFIX)
def checked(**flags: Any) -> None:
    click.echo(build_settings(_Checked, flags).input_topic)


def test_a_failed_pydantic_check_names_the_variable_or_flag(monkeypatch: pytest.MonkeyPatch):
    result = CliRunner().invoke(checked, ["--input-topic", "a b"])
    assert result.exit_code == 2
    assert "invalid settings: --input-topic a b: Value error, no spaces" in result.output
    monkeypatch.setenv("SENTISTREAM_INPUT_TOPIC", "c d")
    result = CliRunner().invoke(checked, [])
    assert result.exit_code == 2
    assert (
        "invalid settings: SENTISTREAM_INPUT_TOPIC='c d': Value error, no spaces" in result.output
    )


def test_unknown_variables_are_warned_about_with_the_closest_name():
    environ = {
        "SENTISTREAM_MAX_BATCH_SZE": "3",
        "SENTISTREAM_MAX_BATCH_SIZE": "3",
        "SENTISTREAM_WHATEVER": "1",
        "PATH": "/bin",
    }
    known = {ENV_PREFIX + name.upper() for name in WorkerSettings.model_fields}
    warnings = unknown_variables(environ, ENV_PREFIX, known)
    assert len(warnings) == 2
    assert warnings[0].startswith("warning: SENTISTREAM_MAX_BATCH_SZE is not a sentistream")
    assert warnings[0].endswith("did you mean SENTISTREAM_MAX_BATCH_SIZE?")
    assert "SENTISTREAM_WHATEVER" in warnings[1]
    assert "known: SENTISTREAM_BOOTSTRAP_SERVERS" in warnings[1]


@click.command()
@click.option("--model-dir", "--model", "model_dir", cls=Option, aliases=["--model"], help="M.")
def aliased(model_dir: str) -> None:
    click.echo(model_dir)


def test_an_alias_works_but_is_not_shown():
    assert CliRunner().invoke(aliased, ["--model", "old"]).output == "old\n"
    assert CliRunner().invoke(aliased, ["--model-dir", "new"]).output == "new\n"
    help_text = CliRunner().invoke(aliased, ["--help"]).output
    assert "--model-dir" in help_text
    assert "--model " not in help_text
    assert "--model," not in help_text
    with pytest.raises(TypeError, match="--nope"):
        click.option("--a", cls=Option, aliases=["--nope"])(aliased)


def test_every_client_reconnects_within_a_second_not_kafka_pythons_30_s():
    # After a broker restart kafka-python's exponential reconnect and metadata back-offs
    # (30 s each by default) held a worker's labels for 48 s (tests/integration/test_chaos.py).
    assert WorkerSettings().client_config()["reconnect_backoff_max_ms"] == 1_000
