"""Every PromQL expression operators rely on, run by a real Prometheus against a real worker.

``tests/test_deploy_configs.py`` checks the dashboard and alert PromQL with promtool, which
only parses. Here a real Prometheus server (Debian: ``apt-get install prometheus``) scrapes a
worker that has labelled real tweets and dead-lettered bad records, loads the real
``deploy/prometheus/alerts.yml``, and each Grafana panel query and alert expression is run
through ``/api/v1/query``: it must be valid, and it must find the series it names, so no
panel or alert points at a metric that does not exist (or under another job or label).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from tests.integration.conftest import TopicFactory
from tests.integration.worker_process import (
    INT8_MODEL,
    REPO_ROOT,
    SHIPPED_MODEL,
    Topics,
    WorkerProcess,
    consume_all,
    produce_json,
    real_tweets,
    requires_shipped_model,
)

yaml = pytest.importorskip("yaml", reason="PyYAML missing: pip install pyyaml (a dev dependency)")

PROMETHEUS_BIN = shutil.which("prometheus")

pytestmark = [
    pytest.mark.skipif(
        PROMETHEUS_BIN is None,
        reason="the Prometheus server is missing: apt-get install prometheus",
    ),
    requires_shipped_model,
]

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "sentistream.json"
JOB = "sentistream-worker"

TWEETS = 300
# (dead-letter reason, value): enough bad input for the dead-letter series to exist.
BAD_RECORDS: list[tuple[str, bytes]] = [
    ("decode_error", b"\xff\xfe not utf-8"),
    ("invalid_json", b'{"text": "unclosed'),
]

# Grafana's built-in interval macros, as Grafana would expand them for a short time range.
# Longest names first so `$__interval_ms` is not read as `$__interval` + `_ms`.
GRAFANA_MACROS = {
    "__rate_interval_ms": "60000",
    "__rate_interval": "1m",
    "__interval_ms": "15000",
    "__interval": "15s",
    "__range_ms": "60000",
    "__range_s": "60",
    "__range": "1m",
}

# A metric selector (name plus optional {matchers}); quoted strings are matched first and
# dropped, so a label value such as "up" or "sentistream_x" is never taken for a metric.
_SELECTOR_RE = re.compile(
    r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"""
    r"|(?<![\w:])(?P<name>sentistream_\w+|process_\w+|up)(?![\w:(])\s*(?P<matchers>\{[^}]*\})?"
)

START_TIMEOUT_S = 20
DATA_TIMEOUT_S = 20

# Series a healthy worker does not expose until a first event, so a panel or alert reading them
# can only be checked for valid PromQL here, not for data. An entry that returns data after the
# run (because the worker now creates the series at 0) fails the test: take it off the list.
NOT_YET_EXPOSED: dict[str, str] = {}
# (sentistream_commit_failures_total left the list: the worker creates each reason at 0.)


# --------------------------------------------------------------------------- expressions


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel.get("type") == "row":  # rows may hold collapsed panels
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def _template_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """A value for every dashboard template variable: its current value, or all (".*")."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        current = variable.get("current", {}).get("value")
        if isinstance(current, list):
            current = current[0] if len(current) == 1 else ".*"
        if variable.get("type") == "datasource" or current in {None, "", "$__all"}:
            current = ".*"
        values[variable["name"]] = str(current)
    return values


def _expand_grafana(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana macros and template variables ($x, ${x}, ${x:fmt}, [[x]])."""
    values = {**GRAFANA_MACROS, **variables}
    names = "|".join(re.escape(name) for name in sorted(values, key=len, reverse=True))
    if not names:
        return expr
    pattern = re.compile(rf"\$\{{({names})(?::[^}}]*)?\}}|\$({names})\b|\[\[({names})\]\]")
    return pattern.sub(lambda m: values[next(g for g in m.groups() if g)], expr)


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title and refId, PromQL) for every dashboard query, macros expanded."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = _template_values(dashboard)
    return [
        (
            f"panel {panel.get('title', '?')!r} target {target.get('refId', '?')}",
            _expand_grafana(target["expr"], variables),
        )
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if str(target.get("expr", "")).strip() and not target.get("hide")
    ]


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def not_yet_exposed(expr: str) -> bool:
    return any(name in expr for name in NOT_YET_EXPOSED)


def selectors(expr: str) -> set[str]:
    """The metric selectors an expression reads, as queries that must return data: a bare
    name is read from the worker's job; a selector with matchers is kept as written, so a
    wrong job or label value is caught too."""
    found = set()
    for match in _SELECTOR_RE.finditer(expr):
        name, matchers = match.group("name"), match.group("matchers")
        if name is None:
            continue
        found.add(f"{name}{matchers}" if matchers else f'{name}{{job="{JOB}"}}')
    return found


def test_selector_extraction(monkeypatch: pytest.MonkeyPatch) -> None:
    """The regex the live test relies on (no Prometheus needed, but kept beside its user)."""
    expr = (
        'absent(up{job="sentistream-worker"} == 1) or '
        "sum by (le) (rate(sentistream_x_bucket[5m])) / time() - "
        'process_cpu_seconds_total + count(foo{state="up", m="sentistream_y"})'
    )
    assert selectors(expr) == {
        'up{job="sentistream-worker"}',
        'sentistream_x_bucket{job="sentistream-worker"}',
        'process_cpu_seconds_total{job="sentistream-worker"}',
    }
    assert _expand_grafana("rate(x[$__rate_interval]) [${__interval}] $__range_s", {}) == (
        "rate(x[1m]) [15s] 60"
    )
    assert _expand_grafana('x{topic=~"$topic"} [[topic]]', {"topic": "in"}) == 'x{topic=~"in"} in'
    monkeypatch.setitem(NOT_YET_EXPOSED, "sentistream_commit_failures_total", "an example")
    assert not_yet_exposed("sum(rate(sentistream_commit_failures_total[1m]))")
    assert not not_yet_exposed("sum(rate(sentistream_commits_total[1m]))")


# --------------------------------------------------------------------------- prometheus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrometheusServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def api(self, path: str, **params: str) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:  # 400/422: bad PromQL, with a JSON error body
            body = exc.read()
        data = json.loads(body)
        assert isinstance(data, dict)
        return data

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("/api/v1/query", query=expr)

    def poll(self, check: Callable[[], bool], timeout: float) -> bool:
        """Call ``check`` until it is true (-> True) or ``timeout`` passes (-> False)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited {self.process.returncode}:\n{self.log()}")
            try:
                if check():
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        if not self.poll(check, timeout):
            raise AssertionError(f"{what}: not within {timeout} s\n{self.log()}")


def prometheus_config(worker_port: int, listen: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, scraping the test worker every second."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    # The real rule file, by absolute path (the original is relative to deploy/prometheus).
    config["rule_files"] = [str(ALERTS)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert JOB in jobs, f"{PROMETHEUS_CONFIG} has no job {JOB!r}"
    worker_job = jobs[JOB]
    for key in [k for k in worker_job if k.endswith("_sd_configs") or k == "static_configs"]:
        del worker_job[key]
    worker_job["static_configs"] = [{"targets": [f"127.0.0.1:{worker_port}"]}]
    if "prometheus" in jobs:  # the self-scrape job: point it at this server
        jobs["prometheus"]["static_configs"] = [{"targets": [listen]}]
    return config


@pytest.fixture
def worker(
    start_worker: Callable[..., WorkerProcess], topic_factory: TopicFactory
) -> WorkerProcess:
    # A shadow model, so the shadow panel has data: the int8 folder when there is one.
    shadow = INT8_MODEL if (INT8_MODEL / "manifest.json").is_file() else SHIPPED_MODEL
    process = start_worker(
        shadow_model_dir=str(shadow), shadow_topic=topic_factory(partitions=3, prefix="shadow")
    )
    process.wait_ready()
    return process


@pytest.fixture
def prometheus(worker: WorkerProcess, tmp_path: Path) -> Iterator[PrometheusServer]:
    assert PROMETHEUS_BIN is not None
    listen = f"127.0.0.1:{_free_port()}"
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(
        yaml.safe_dump(prometheus_config(worker.port, listen), sort_keys=False), encoding="utf-8"
    )
    log_path = tmp_path / "prometheus.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS_BIN,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={listen}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = PrometheusServer(process, f"http://{listen}", log_path)
    try:
        server.wait("prometheus /-/ready", lambda: _ready(server), START_TIMEOUT_S)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _ready(server: PrometheusServer) -> bool:
    with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
        return bool(response.status == 200)


def _target_up(server: PrometheusServer) -> bool:
    targets = server.api("/api/v1/targets", state="active")["data"]["activeTargets"]
    return any(t["labels"].get("job") == JOB and t["health"] == "up" for t in targets)


def _scalar_at_least(server: PrometheusServer, expr: str, minimum: float) -> bool:
    result = server.query(expr)["data"]["result"]
    return bool(result) and float(result[0]["value"][1]) >= minimum


def _has_data(response: dict[str, Any]) -> bool:
    """A success with at least one sample that is a number (a NaN from histogram_quantile
    over buckets that did not move is no data for a panel)."""
    if response.get("status") != "success":
        return False
    data = response["data"]
    if data["resultType"] == "scalar":
        return not math.isnan(float(data["result"][1]))
    samples = [s["value"][1] for s in data["result"]] if data["resultType"] == "vector" else []
    return any(not math.isnan(float(v)) for v in samples)


def _produce_bad_records(bootstrap: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for n, (_reason, value) in enumerate(BAD_RECORDS):
        producer.send(topic, key=f"bad-{n}".encode(), value=value)
    producer.flush()
    producer.close()


# --------------------------------------------------------------------------- the test


def test_dashboard_and_alert_promql_return_data_from_a_live_worker(
    kafka_bootstrap: str,
    topics: Topics,
    worker: WorkerProcess,
    prometheus: PrometheusServer,
) -> None:
    started = time.monotonic()
    prometheus.wait(f"target {JOB} up", lambda: _target_up(prometheus), START_TIMEOUT_S)
    # Counters and histograms get a zero sample before the traffic, so rate() sees it move.
    prometheus.wait(
        "two scrapes of the worker",
        lambda: _scalar_at_least(prometheus, f'count_over_time(up{{job="{JOB}"}}[1m])', 2),
        START_TIMEOUT_S,
    )

    ids = produce_json(kafka_bootstrap, topics.input, real_tweets(TWEETS))
    _produce_bad_records(kafka_bootstrap, topics.input)
    labelled = consume_all(kafka_bootstrap, topics.output, until=len(ids), timeout=30)
    assert len(labelled) >= len(ids), f"{len(labelled)}/{len(ids)} labelled:\n{worker.log()}"
    dead = consume_all(kafka_bootstrap, topics.dlq, until=len(BAD_RECORDS), timeout=15)
    assert len(dead) >= len(BAD_RECORDS), f"{len(dead)} dead-lettered:\n{worker.log()}"
    # Prometheus has scraped the end state (rate() needs two samples of each new series).
    prometheus.wait(
        "the labels and dead letters scraped",
        lambda: (
            _scalar_at_least(prometheus, "sum(sentistream_records_labeled_total)", len(ids))
            and _scalar_at_least(
                prometheus,
                "min(count_over_time(sentistream_records_dead_lettered_total[1m]))",
                2,
            )
        ),
        DATA_TIMEOUT_S,
    )

    # Every expression: valid PromQL (an error is final, so it fails at once) ...
    panels = dashboard_exprs()
    rules = alert_rules()
    assert panels, f"no panel query in {DASHBOARD}"
    queries: dict[str, set[str]] = {}
    for where, expr in panels:
        queries.setdefault(expr, set()).add(f"dashboard {where}")
    for rule in rules:
        queries.setdefault(str(rule["expr"]), set()).add(
            f"rule {rule.get('alert') or rule.get('record')}"
        )
    invalid = {
        expr: f"{sorted(where)} -> {response.get('errorType')}: {response.get('error')}"
        for expr, where in queries.items()
        if (response := prometheus.query(expr)).get("status") != "success"
    }
    assert not invalid, f"invalid PromQL: {json.dumps(invalid, indent=2)}"

    # ... every metric selector in it finds series of the worker job, and every panel query
    # returns a number. Alert expressions are conditions, empty while the worker is healthy
    # (e.g. `absent(up{...} == 1)`, `... > 0.05`), so for them the selectors are what must
    # return data. Polled briefly: a series born in the last scrape has no rate() yet.
    needed: dict[str, set[str]] = {}
    for where, expr in panels:
        if not not_yet_exposed(expr):
            needed.setdefault(expr, set()).add(f"dashboard {where}")
        for selector in selectors(expr):
            needed.setdefault(selector, set()).add(f"selector in dashboard {where}")
    for rule in rules:
        name = rule.get("alert") or rule.get("record")
        selector_set = selectors(str(rule["expr"]))
        assert selector_set, f"rule {name}: no metric selector found in {rule['expr']!r}"
        for selector in selector_set:
            needed.setdefault(selector, set()).add(f"selector in rule {name}")
    awaited = {expr: where for expr, where in needed.items() if not_yet_exposed(expr)}
    for expr in awaited:
        del needed[expr]
    stale = sorted(expr for expr in awaited if _has_data(prometheus.query(expr)))
    assert not stale, f"these now return data, take them off NOT_YET_EXPOSED: {stale}"

    empty: dict[str, set[str]] = {}

    def all_have_data() -> bool:
        empty.clear()
        for expr, where in needed.items():
            if not _has_data(prometheus.query(expr)):
                empty[expr] = where
        return not empty

    if not prometheus.poll(all_have_data, DATA_TIMEOUT_S):
        report = "\n".join(
            f"  {expr}\n    used by: {sorted(where)}" for expr, where in empty.items()
        )
        pytest.fail(f"queries with no data after a run of the worker:\n{report}", pytrace=False)

    # The rule file loaded and every rule evaluated without error.
    expected = {str(rule.get("alert") or rule.get("record")) for rule in rules}
    loaded: dict[str, dict[str, Any]] = {}

    def all_evaluated() -> bool:
        groups = prometheus.api("/api/v1/rules")["data"]["groups"]
        loaded.clear()
        loaded.update({rule["name"]: rule for group in groups for rule in group["rules"]})
        return expected <= set(loaded) and all(
            not loaded[name].get("lastEvaluation", "").startswith("0001-") for name in expected
        )

    if not prometheus.poll(all_evaluated, DATA_TIMEOUT_S):
        pytest.fail(
            f"rules not loaded or never evaluated: expected {sorted(expected)}, "
            f"loaded {sorted(loaded)}\n{prometheus.log()}",
            pytrace=False,
        )
    unhealthy = {
        name: f"{loaded[name].get('health')}: {loaded[name].get('lastError')}"
        for name in sorted(expected)
        if loaded[name].get("health") != "ok"
    }
    assert not unhealthy, f"rules evaluating with errors: {unhealthy}"

    assert time.monotonic() - started < 60
