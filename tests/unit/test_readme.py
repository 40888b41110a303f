"""The README's configuration and metrics tables name what the code declares."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from sentistream.settings_cli import is_secret
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_worker_setting_is_in_the_configuration_table() -> None:
    rows = set(re.findall(r"^\| `(--[a-z-]+)` \| `(SENTISTREAM_[A-Z_]+)` \|", README, re.M))
    expected = {
        ("--" + name.replace("_", "-"), ENV_PREFIX + name.upper())
        for name, field in WorkerSettings.model_fields.items()
        if not is_secret(field)
    }
    assert rows == expected
    # A secret has a variable and no flag (a flag's value shows in `ps`).
    env_only = set(re.findall(r"^\| no flag \| `(SENTISTREAM_[A-Z_]+)` \|", README, re.M))
    assert env_only == {
        ENV_PREFIX + name.upper()
        for name, field in WorkerSettings.model_fields.items()
        if is_secret(field)
    }


def test_every_metric_is_in_the_metrics_table() -> None:
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    declared = set()
    for family in registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        declared.add(family.name + suffix)
    documented = set(re.findall(r"^\| `(sentistream_[a-z_]+)` \|", README, re.M))
    assert documented == declared
