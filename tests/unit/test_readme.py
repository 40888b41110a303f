"""The README's configuration and metrics tables name what the code declares."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from sentistream.worker.metrics import WorkerMetrics
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_worker_setting_is_in_the_configuration_table() -> None:
    rows = set(re.findall(r"^\| `(--[a-z-]+)` \| `(SENTISTREAM_[A-Z_]+)` \|", README, re.M))
    expected = {
        ("--" + name.replace("_", "-"), ENV_PREFIX + name.upper())
        for name in WorkerSettings.model_fields
    }
    assert rows == expected


def test_every_metric_is_in_the_metrics_table() -> None:
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    declared = set()
    for family in registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        declared.add(family.name + suffix)
    documented = set(re.findall(r"^\| `(sentistream_[a-z_]+)` \|", README, re.M))
    assert documented == declared
