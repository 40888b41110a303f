"""The reference pages' tables and quoted messages name what the code declares: the
configuration table (docs/configuration.md) every setting, the metrics table
(docs/operations.md) every metric, the troubleshooting page (docs/troubleshooting.md) the
manifest's own refusals, the model page (docs/model.md) the export's int8 floor, the message
formats (docs/message-formats.md) every dead-letter reason."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from sentistream.cli.settings_options import is_secret
from sentistream.manifest import FORMAT_VERSION, MANIFEST_FILE, ManifestError, load_manifest
from sentistream.text import CLEANING_VERSION
from sentistream.worker.core.metrics import DEAD_LETTER_REASONS, WorkerMetrics
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
TROUBLESHOOTING = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
MODEL = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
MESSAGE_FORMATS = (ROOT / "docs" / "message-formats.md").read_text(encoding="utf-8")
SHIPPED_MODEL = ROOT / "models" / "sentistream-lstm"

_SETTING_ROW = re.compile(
    r"^\| (`--[a-z-]+`|no flag) \| `(SENTISTREAM_[A-Z_]+)` \| (.*?) \| (.*) \|$", re.M
)


def test_every_worker_setting_is_in_the_configuration_table() -> None:
    rows = set(re.findall(r"^\| `(--[a-z-]+)` \| `(SENTISTREAM_[A-Z_]+)` \|", CONFIGURATION, re.M))
    expected = {
        ("--" + name.replace("_", "-"), ENV_PREFIX + name.upper())
        for name, field in WorkerSettings.model_fields.items()
        if not is_secret(field)
    }
    assert rows == expected
    # A secret has a variable and no flag (a flag's value shows in `ps`).
    env_only = set(re.findall(r"^\| no flag \| `(SENTISTREAM_[A-Z_]+)` \|", CONFIGURATION, re.M))
    assert env_only == {
        ENV_PREFIX + name.upper()
        for name, field in WorkerSettings.model_fields.items()
        if is_secret(field)
    }


def _shown(default: object) -> str:
    """A default as the configuration table shows it."""
    if default is None:
        return "none"
    if isinstance(default, SecretStr):
        return default.get_secret_value()
    return str(default)


def test_each_settings_default_and_meaning_in_the_table_are_the_codes() -> None:
    rows = {
        env: (default, meaning) for _, env, default, meaning in _SETTING_ROW.findall(CONFIGURATION)
    }
    for name, field in WorkerSettings.model_fields.items():
        default, meaning = rows[ENV_PREFIX + name.upper()]
        assert default in (f"`{_shown(field.default)}`", _shown(field.default)), name
        assert field.description, name
        assert meaning.startswith(field.description.strip()), name


def _declared_metrics() -> dict[str, str]:
    """Every metric the worker declares → its type as the metrics table names it."""
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    declared = {}
    for family in registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        declared[family.name + suffix] = {"info": "gauge (1)"}.get(family.type, family.type)
    return declared


def test_every_metric_is_in_the_metrics_table() -> None:
    documented = set(re.findall(r"^\| `(sentistream_[a-z_]+)` \|", OPERATIONS, re.M))
    assert documented == set(_declared_metrics())


def test_each_metrics_type_in_the_table_is_the_codes() -> None:
    rows = dict(re.findall(r"^\| `(sentistream_[a-z_]+)` \| ([a-z ()1]+) \|", OPERATIONS, re.M))
    assert rows == _declared_metrics()


def _refusal(tmp_path: Path, change: dict[str, object]) -> str:
    """What load_manifest says of the shipped manifest with ``change`` applied, without the
    path it starts with, as a pattern in which every version number may differ."""
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(SHIPPED_MODEL / MANIFEST_FILE, folder / MANIFEST_FILE)
    data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        target = data
        for parent in parents:
            target = target[parent]
        target[key] = value
    (folder / MANIFEST_FILE).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ManifestError) as refused:
        load_manifest(folder)
    message = str(refused.value).removeprefix(f"{folder / MANIFEST_FILE}: ")
    # The page quotes one instance; the versions in it need not be today's.
    return re.sub(r"(?<=v)\d+|(?<=format\\ )\d+", r"\\d+", re.escape(message))


def test_troubleshooting_quotes_the_cleaning_version_refusal_as_the_code_prints_it(
    tmp_path: Path,
) -> None:
    pattern = _refusal(tmp_path, {"text.cleaning_version": CLEANING_VERSION - 1})
    assert re.search(r"`Error: [^`]*manifest\.json: " + pattern + "`", TROUBLESHOOTING)


def test_troubleshooting_quotes_the_manifest_format_refusal_as_the_code_prints_it(
    tmp_path: Path,
) -> None:
    pattern = _refusal(tmp_path, {"format_version": FORMAT_VERSION - 1})
    # The page shortens the end of this one with "...".
    head = pattern.split(r"re\-export")[0]
    assert re.search(r"`Error: [^`]*manifest\.json: " + head + "re-export", TROUBLESHOOTING)


def _module_constant(path: Path, name: str) -> object:
    """A module-level constant read from the source, for modules too heavy to import here
    (the exporter imports TensorFlow)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path}: no {name}")


def test_the_model_page_states_the_exports_int8_floor() -> None:
    floor = _module_constant(
        ROOT / "src" / "sentistream" / "export" / "pipeline.py", "MIN_INT8_AGREEMENT"
    )
    stated = re.findall(r"at least ([\d.]+) % of the held-out tweets", MODEL)
    assert stated, "docs/model.md no longer states the int8 agreement floor"
    assert {float(share) / 100 for share in stated} == {floor}


def test_the_message_formats_name_every_dead_letter_reason_and_their_examples_are_json() -> None:
    reasons = re.search(r"^\| `sentistream\.errors\.reason` \| (.*) \|$", MESSAGE_FORMATS, re.M)
    assert reasons, "docs/message-formats.md has no row for sentistream.errors.reason"
    named = set(re.findall(r"`([a-z_]+)`", reasons.group(1)))
    assert set(DEAD_LETTER_REASONS) <= named
    examples = re.findall(r"^```json\n(.*?)^```", MESSAGE_FORMATS, re.M | re.S)
    assert len(examples) >= 5
    for example in examples:
        json.loads(example)
