"""The deployment files are valid: compose, Prometheus config, alert rules, Grafana dashboard.

No Kafka or Docker engine needed. The tools come from Debian:
``apt-get install docker-compose prometheus`` (``prometheus`` ships ``promtool``).
A test whose tool is missing is skipped and says which package to install.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentistream.worker.core.metrics import WorkerMetrics

yaml = pytest.importorskip("yaml", reason="PyYAML missing: pip install pyyaml (a dev dependency)")

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "sentistream.json"
KAFKA_POM = ROOT / "tools" / "kafka" / "pom.xml"
DEPLOY_README = ROOT / "deploy" / "README.md"

DATASOURCE_UID = "prometheus"


def _worker_metrics() -> frozenset[str]:
    """The metrics a worker exposes, as sentistream.worker.core.metrics declares them (the
    contract); histograms without their _bucket/_sum/_count."""
    declared: set[str] = set()
    for family in WorkerMetrics.create().registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        declared.add(family.name + suffix)
    return frozenset(declared)


_METRIC_RE = re.compile(r"\bsentistream_[a-z0-9_]*[a-z0-9]")
_HISTOGRAM_SUFFIX_RE = re.compile(r"_(bucket|sum|count)$")


# --------------------------------------------------------------------------- helpers


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.skip(
        "neither docker-compose nor the docker compose plugin: apt-get install docker-compose"
    )


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool missing: apt-get install prometheus")
    return path


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # ["KEY=value", ...]
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _image_tag(image: str) -> str:
    name, _, tag = image.rpartition(":")
    assert name, f"image {image!r} is not pinned to a tag"
    assert "/" not in tag, f"image {image!r} is not pinned to a tag"
    return tag


def _pom_kafka_version() -> str:
    pom = KAFKA_POM.read_text(encoding="utf-8")
    prop = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom)
    dep = re.search(
        r"<artifactId>\s*kafka_2\.13\s*</artifactId>\s*<version>\s*([^<\s]+)\s*</version>", pom
    )
    version = dep.group(1) if dep else None
    if version is None or version.startswith("${"):
        version = prop.group(1) if prop else None
    if version is None:
        pytest.fail(f"no kafka_2.13 version nor <kafka.version> property in {KAFKA_POM}")
    return version


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel.get("type") == "row":  # rows may hold collapsed panels
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def _dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (panel.get("title", "?"), target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def _alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


def _metric_names(expr: str) -> set[str]:
    return {_HISTOGRAM_SUFFIX_RE.sub("", name) for name in _METRIC_RE.findall(expr)}


def _variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in _dashboard().get("templating", {}).get("list", [])}


def _grafana_to_promql(expr: str) -> str:
    """Replace Grafana's interval macros and the dashboard's variables (each by its current
    value, "all" by ``.*``) so promtool can parse the expression."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "1m", expr)
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)(:[a-z]+)?\}?", "1m", expr)
    for name, variable in _variables().items():
        value = variable.get("current", {}).get("value")
        value = value[0] if isinstance(value, list) else value
        value = ".*" if value in {None, "", "$__all"} else str(value)
        expr = re.sub(rf"\$\{{{name}(:[^}}]*)?\}}|\${name}\b", value, expr)
    return expr


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown file."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


# --------------------------------------------------------------------------- compose


def test_compose_config_is_valid() -> None:
    cmd = _compose_command()
    _run([*cmd, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=ROOT)
    _run([*cmd, "-f", str(COMPOSE_FILE), "--profile", "train", "config", "-q"], cwd=ROOT)


def test_compose_uses_the_compose_spec() -> None:
    compose = _compose()
    assert "version" not in compose, "the compose spec has no top-level `version:`"
    expected = {"kafka", "kafka-init", "trainer", "worker", "producer", "prometheus", "grafana"}
    assert expected <= set(compose["services"])
    assert compose["services"]["trainer"].get("profiles") == ["train"]


def test_worker_scales() -> None:
    worker = _compose()["services"]["worker"]
    assert "container_name" not in worker, "a fixed container_name stops --scale worker=N"
    assert not worker.get("ports"), "a published host port stops --scale worker=N"
    assert "8000" in {str(port) for port in worker.get("expose", [])}
    assert "healthcheck" in worker
    assert worker["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_worker_environment_is_sentistream_only() -> None:
    env = _environment(_compose()["services"]["worker"])
    assert env, "the worker sets no environment"
    stray = sorted(name for name in env if not name.startswith("SENTISTREAM_"))
    assert not stray, f"worker env vars without the SENTISTREAM_ prefix: {stray}"
    assert env["SENTISTREAM_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_kafka_image_matches_the_local_broker_version() -> None:
    version = _pom_kafka_version()
    services = _compose()["services"]
    for name in ("kafka", "kafka-init"):
        image = services[name]["image"]
        assert image.startswith("apache/kafka:"), image
        assert _image_tag(image) == version, (
            f"{name} runs {image} but tools/kafka/pom.xml pins Kafka {version}"
        )


def test_third_party_images_are_pinned() -> None:
    for name, service in _compose()["services"].items():
        if "build" in service:
            continue
        tag = _image_tag(service["image"])
        assert tag != "latest", f"{name}: pin a version, not :latest"


# --------------------------------------------------------------------------- prometheus


def test_prometheus_config_is_valid() -> None:
    _run([_promtool(), "check", "config", str(PROMETHEUS_CONFIG)])


def test_prometheus_scrapes_every_worker_replica() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    dns = jobs["sentistream-worker"]["dns_sd_configs"]
    assert any(
        "worker" in sd["names"] and sd.get("type", "SRV") == "A" and sd.get("port") == 8000
        for sd in dns
    )


def test_alert_rules_are_valid() -> None:
    _run([_promtool(), "check", "rules", str(ALERTS)])


def test_alert_rules_unit_tests_pass() -> None:
    _run([_promtool(), "test", "rules", str(ALERTS_TEST)], cwd=PROMETHEUS_DIR)


def test_alerts_have_severity_and_annotations() -> None:
    rules = _alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "SentistreamWorkerDown",
        "SentistreamConsumerLagGrowing",
        "SentistreamDeadLetterRate",
        "SentistreamHighLatencyP99",
        "SentistreamOffsetsNotCommitted",
        "SentistreamLagHigh",
        "SentistreamNoPartitionsAssigned",
        "SentistreamWorkerRestarting",
        "SentistreamMixedModelVersions",
    } <= names
    for rule in rules:
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), rule["alert"]
        assert annotations.get("description"), rule["alert"]


def test_every_alert_has_a_runbook_section_in_deploy_readme() -> None:
    anchors = _anchors(DEPLOY_README.read_text(encoding="utf-8"))
    for rule in _alert_rules():
        url = rule.get("annotations", {}).get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path == "deploy/README.md", f"{rule['alert']}: runbook_url {url!r}"
        assert anchor == rule["alert"].lower(), f"{rule['alert']}: runbook_url {url!r}"
        assert anchor in anchors, f"{rule['alert']}: no section {anchor!r} in deploy/README.md"


def test_alert_unit_tests_cover_firing_and_quiet_cases() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for alert in sorted(rule["alert"] for rule in _alert_rules()):
        outcomes = {bool(case.get("exp_alerts")) for case in cases if case["alertname"] == alert}
        assert outcomes == {True, False}, f"{alert} needs a firing and a quiet test case"


# --------------------------------------------------------------------------- grafana


def test_grafana_datasource_is_provisioned() -> None:
    path = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
    sources = yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    prometheus = next(s for s in sources if s["uid"] == DATASOURCE_UID)
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text(encoding="utf-8")
    )["providers"]
    assert providers
    assert all(p["type"] == "file" for p in providers)


def test_dashboard_panels_query_prometheus() -> None:
    dashboard = _dashboard()
    panels = list(_panels(dashboard["panels"]))
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    # The data source is a variable whose default is the provisioned Prometheus.
    variable = _variables()["datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    assert variable["current"]["value"] == DATASOURCE_UID
    for panel in panels:
        title = panel.get("title", "?")
        assert panel.get("datasource", {}).get("uid") == "${datasource}", title
        targets = [t for t in panel.get("targets", []) if str(t.get("expr", "")).strip()]
        assert targets, f"panel {title!r} has no target with an expr"
        for target in targets:
            uid = target.get("datasource", {}).get("uid", "${datasource}")
            assert uid == "${datasource}", title


def test_every_dashboard_query_follows_the_instance_variable() -> None:
    instance = _variables()["instance"]
    assert instance["includeAll"]
    assert instance["multi"]
    assert instance["allValue"] == ".*"
    assert "sentistream-worker" in instance["definition"]
    selector = re.compile(r"(?<![\w:])(sentistream_\w+|process_\w+|up)(?![\w:(])(\{[^}]*\})?")
    for title, expr in _dashboard_exprs():
        for match in selector.finditer(expr):
            assert 'instance=~"$instance"' in (match.group(2) or ""), f"{title}: {match.group(0)}"


def test_dashboard_covers_the_operator_questions() -> None:
    exprs = " ".join(expr for _, expr in _dashboard_exprs())
    for needed in (
        "sentistream_records_consumed_total",
        "sentistream_records_labeled_total",
        "sentistream_batch_size_records",
        "sentistream_inference_seconds_bucket",
        "sentistream_event_to_label_seconds_bucket",
        "sentistream_consumer_lag_records",
        "sentistream_records_dead_lettered_total",
        "sentistream_model_info",
        'up{job="sentistream-worker"',
        "process_resident_memory_bytes",
        # issue 13: commit failures, lag in seconds, saturation, label mix, model versions,
        # partitions and readiness, restarts and rebalances
        "sentistream_commit_failures_total",
        "sentistream_event_to_label_seconds_sum",
        "/ on (instance) max by (instance) (sentistream_max_batch_size_records",
        "sentistream_inference_seconds_sum",
        "ignoring(label) group_left",
        "count(count by (sha256) (sentistream_model_info",
        "sum(sentistream_assigned_partitions",
        "max(sentistream_input_partitions",
        "count(sentistream_assigned_partitions",
        "changes(process_start_time_seconds",
        "increase(sentistream_rebalances_total",
        # issue 12: the shadow model's agreement with the primary, and what it dropped
        "sentistream_shadow_agreement_ratio",
        "sentistream_shadow_dropped_records_total",
    ):
        assert needed in exprs, f"no dashboard panel queries {needed}"


def test_dashboard_and_alerts_use_only_known_metrics() -> None:
    referenced: dict[str, set[str]] = {}
    for title, expr in _dashboard_exprs():
        for name in _metric_names(expr):
            referenced.setdefault(name, set()).add(f"dashboard panel {title!r}")
    for rule in _alert_rules():
        for name in _metric_names(rule["expr"]):
            referenced.setdefault(name, set()).add(f"alert {rule['alert']}")
    known = _worker_metrics()
    unknown = {name: where for name, where in referenced.items() if name not in known}
    assert not unknown, f"metrics sentistream.worker.core.metrics does not declare: {unknown}"


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    """promtool validates PromQL inside rule files: each panel query becomes a recording rule."""
    promtool = _promtool()
    rules = [
        {"record": f"dashboard:panel_query:{i}", "expr": _grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    _run([promtool, "check", "rules", str(path)])
