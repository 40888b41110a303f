"""A person's mistakes get one line that says what is wrong, a non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sentistream.cli import cli
from sentistream.cli import connect as cli_connect
from sentistream.worker.settings import ENV_PREFIX

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "sentistream-lstm"
DEMO = ROOT / "examples" / "demo-tweets.csv"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_error_line(result: Result, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# --------------------------------------------------------------------------- Kafka not answering


KAFKA_COMMANDS = pytest.mark.parametrize(
    "args",
    [
        ["produce", "--file", str(DEMO)],
        ["tail"],
        ["create-topics"],
    ],
    ids=["produce", "tail", "create-topics"],
)
CHECK = "check --bootstrap-servers or SENTISTREAM_BOOTSTRAP_SERVERS, and that the broker is running"


@KAFKA_COMMANDS
def test_a_refused_port_fails_at_once_in_the_workers_words(args: list[str]) -> None:
    """Nothing listens: no reason to wait CONNECT_TIMEOUT_S (5 s) for kafka-python."""
    server = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    result = CliRunner().invoke(cli, [*args, "--bootstrap-servers", server])
    assert time.monotonic() - started < 2
    line = one_error_line(result)
    assert line == f"Error: cannot reach {server} (connection refused); {CHECK}"
    # kafka-python's own per-attempt log lines do not reach the terminal
    assert result.stderr.strip() == line


@pytest.fixture
def silent_server() -> Iterator[str]:
    """host:port of a socket that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@KAFKA_COMMANDS
def test_a_server_that_accepts_but_does_not_answer_is_one_line_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch, args: list[str], silent_server: str
) -> None:
    monkeypatch.setattr(cli_connect, "CONNECT_TIMEOUT_S", 1.0)
    started = time.monotonic()
    result = CliRunner().invoke(cli, [*args, "--bootstrap-servers", silent_server])
    assert time.monotonic() - started < 5
    line = one_error_line(result)
    assert line == (
        f"Error: cannot reach Kafka at {silent_server} within 1 s ({silent_server} accepts "
        f"connections but does not answer as a Kafka broker); {CHECK}"
    )
    assert result.stderr.strip() == line


def test_an_unknown_host_is_named() -> None:
    result = CliRunner().invoke(cli, ["tail", "--bootstrap-servers", "no-such-host.invalid:9092"])
    assert "cannot reach no-such-host.invalid:9092 (unknown host)" in one_error_line(result)


def test_a_real_process_prints_one_line_and_exits_1_without_traceback() -> None:
    """The same through a real process: what a person sees on the terminal (stderr whole)."""
    server = f"127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sentistream.cli", "create-topics", "--bootstrap-servers", server],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert time.monotonic() - started < cli_connect.CONNECT_TIMEOUT_S + 10
    assert done.stderr == f"Error: cannot reach {server} (connection refused); {CHECK}\n"
    assert done.stdout == ""


@KAFKA_COMMANDS
def test_a_missing_sasl_setting_exits_2_in_one_line_as_the_worker_does(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentistream.worker.app import main as worker_main

    monkeypatch.setattr(worker_main, "exit_process", sys.exit)  # not os._exit inside pytest
    flags = ["--security-protocol", "SASL_SSL", "--bootstrap-servers", "127.0.0.1:1"]
    line = one_error_line(CliRunner().invoke(cli, [*args, *flags]), exit_code=2)
    assert line == (
        "Error: SASL_SSL needs --sasl-username and a password "
        "(SENTISTREAM_SASL_PASSWORD or --sasl-password-file)"
    )
    assert CliRunner().invoke(cli, ["worker", *flags]).exit_code == 2


@pytest.mark.parametrize("servers", ["localhost:abc", "a:1,,b:2", "b:"])
def test_a_bootstrap_server_that_is_not_host_port_is_a_settings_error(servers: str) -> None:
    result = CliRunner().invoke(cli, ["tail", "--bootstrap-servers", servers])
    assert "is not host:port" in one_error_line(result, exit_code=2)


# --------------------------------------------------------------------------- broken manifest


def _model_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    return folder


def test_a_manifest_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    folder = _model_copy(tmp_path)
    (folder / "manifest.json").write_text('{"name": "x",', encoding="utf-8")
    line = one_error_line(CliRunner().invoke(cli, ["predict", "--model-dir", str(folder), "hi"]))
    assert line.startswith(f"Error: {folder / 'manifest.json'}: not a valid manifest: Invalid JSON")
    assert "errors.pydantic.dev" not in line


def test_a_manifest_with_missing_and_wrong_fields_names_them_on_one_line(tmp_path: Path) -> None:
    folder = _model_copy(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    del manifest["labels"]
    manifest["text"]["maxlen"] = "forty"
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    result = CliRunner().invoke(cli, ["predict", "--model-dir", str(folder), "hi"])
    line = one_error_line(result)
    assert "labels: Field required" in line
    assert "text.maxlen: Input should be a valid integer" in line
    assert "errors.pydantic.dev" not in result.output


def test_a_manifest_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    folder = _model_copy(tmp_path)
    (folder / "manifest.json").write_bytes(b'{"name": "caf\xe9"}')
    line = one_error_line(CliRunner().invoke(cli, ["predict", "--model-dir", str(folder), "hi"]))
    assert line.endswith("not a valid manifest: not UTF-8 (invalid continuation byte)")


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("value", ["0", "-3"])
def test_evaluate_batch_size_must_be_positive(value: str) -> None:
    result = CliRunner().invoke(
        cli, ["evaluate", "--data", str(DEMO), "--batch-size", value], catch_exceptions=False
    )
    line = one_error_line(result, exit_code=2)
    assert f"Invalid value for '--batch-size': {value} is not in the range x>=1" in line


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["produce", "--file", str(DEMO), "--rate", "0"], "--rate"),
        (["produce", "--file", str(DEMO), "--limit", "0"], "--limit"),
        (["tail", "--max", "0"], "--max"),
        (["tail", "--timeout", "-1"], "--timeout"),
        (["create-topics", "--partitions", "0"], "--partitions"),
        (["export", "--keras-dir", ".", "--out", "x", "--parity-limit", "0"], "--parity-limit"),
        (["bench", "--tweets", "0"], "--tweets"),
    ],
)
def test_numbers_below_their_minimum_are_usage_errors(args: list[str], flag: str) -> None:
    line = one_error_line(CliRunner().invoke(cli, args), exit_code=2)
    assert f"Invalid value for '{flag}'" in line


def test_a_bad_number_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SENTISTREAM_MAX_WAIT_MS", "abc")
    line = one_error_line(CliRunner().invoke(cli, ["worker"]), exit_code=2)
    assert line == "Error: Invalid value for SENTISTREAM_MAX_WAIT_MS: 'abc' is not a valid integer."
