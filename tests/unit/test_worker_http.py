"""The worker's HTTP endpoints on a real socket (127.0.0.1, a free port)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from sentistream.worker.app.http import HealthServer, make_app
from sentistream.worker.core.metrics import WorkerMetrics


@dataclass
class Checks:
    healthy: bool = True
    ready: bool = False

    def health(self) -> tuple[bool, str]:
        return self.healthy, "last step 0.1 s ago" if self.healthy else "stalled for 42 s"

    def readiness(self) -> tuple[bool, str]:
        return self.ready, "2 partitions" if self.ready else "no partition assigned"


@dataclass
class Running:
    port: int
    checks: Checks
    metrics: WorkerMetrics

    def get(self, path: str) -> tuple[int, str, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return (
                response.status,
                response.getheader("Content-Type") or "",
                response.read().decode("utf-8"),
            )
        finally:
            connection.close()


@pytest.fixture
def server() -> Iterator[Running]:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    checks = Checks()
    health = HealthServer("127.0.0.1", 0, make_app(registry, checks.health, checks.readiness))
    health.start()
    try:
        yield Running(health.port, checks, metrics)
    finally:
        health.close()


def test_the_server_listens_on_the_free_port_it_was_given(server: Running):
    assert server.port > 0


def test_metrics_exposes_the_registry(server: Running):
    server.metrics.labeled.labels(label="positive").inc(3)
    server.metrics.consumer_lag.labels(topic="tweets", partition="1").set(17)
    status, content_type, body = server.get("/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert 'sentistream_records_labeled_total{label="positive"} 3.0' in body
    assert 'sentistream_consumer_lag_records{partition="1",topic="tweets"} 17.0' in body
    assert "process_" not in body  # tests use WorkerMetrics.create without process metrics


def test_healthz_follows_its_check(server: Running):
    assert server.get("/healthz") == (200, "text/plain; charset=utf-8", "ok: last step 0.1 s ago\n")
    server.checks.healthy = False
    status, _, body = server.get("/healthz")
    assert status == 503
    assert body == "not ok: stalled for 42 s\n"


def test_readyz_follows_its_check(server: Running):
    status, _, body = server.get("/readyz")
    assert (status, body) == (503, "not ok: no partition assigned\n")
    server.checks.ready = True
    status, _, body = server.get("/readyz")
    assert (status, body) == (200, "ok: 2 partitions\n")
    # readiness and health are separate checks
    server.checks.healthy = False
    assert server.get("/readyz")[0] == 200
    assert server.get("/healthz")[0] == 503


@pytest.mark.parametrize("path", ["/", "/health", "/metricsx", "/readyz/extra"])
def test_an_unknown_path_is_404(server: Running, path: str):
    status, _, body = server.get(path)
    assert status == 404
    assert "/metrics" in body


def test_close_releases_the_port():
    app = make_app(CollectorRegistry(), lambda: (True, ""), lambda: (True, ""))
    health = HealthServer("127.0.0.1", 0, app)
    health.start()
    port = health.port
    health.close()
    with pytest.raises(OSError):  # noqa: PT011 - refused connections have no finer type
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/healthz")
