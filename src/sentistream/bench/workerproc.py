"""A ``sentistream worker`` process for the benchmark: start, wait until ready, stop.

The worker reaches the cluster with the benchmark's own connection settings, given as the
``SENTISTREAM_*`` variables it reads (the SASL password among them: the environment, unlike
the command line, is not shown by ``ps``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sentistream.connection import ENV_PREFIX, KafkaConnection

__all__ = ["BenchWorker", "free_ports"]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""


@dataclass
class BenchWorker:
    """One worker process; settings are ``SENTISTREAM_*`` environment variables."""

    connection: KafkaConnection
    model_dir: Path
    topics: Mapping[str, str]
    group_id: str
    settings: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment, e.g. ``PYTHONPATH`` to run another checkout's worker."""
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    start_to_ready_s: float = 0.0

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the worker is not running")
        return self.process.pid

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sentistream.cli", "worker"]

    def environment(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """The worker's environment: ``inherited`` without its connection variables (the
        connection is this one's, whole), then the connection, the run's settings, ``env``."""
        own = {ENV_PREFIX + name.upper() for name in KafkaConnection.model_fields}
        return {
            **{k: v for k, v in inherited.items() if k not in own},
            **self.connection.environment(),
            "SENTISTREAM_INPUT_TOPIC": self.topics["input"],
            "SENTISTREAM_OUTPUT_TOPIC": self.topics["output"],
            "SENTISTREAM_DLQ_TOPIC": self.topics["dlq"],
            "SENTISTREAM_GROUP_ID": self.group_id,
            "SENTISTREAM_MODEL_DIR": str(self.model_dir),
            "SENTISTREAM_METRICS_HOST": "127.0.0.1",
            "SENTISTREAM_METRICS_PORT": str(self.port),
            "SENTISTREAM_LOG_LEVEL": "WARNING",
            **{f"SENTISTREAM_{k.upper()}": v for k, v in self.settings.items()},
            **self.env,
        }

    def start(self, timeout_s: float = 120) -> BenchWorker:
        self.port = free_ports(1)[0]
        env = self.environment(os.environ)
        started = time.monotonic()
        self.process = subprocess.Popen(self.command(), env=env)
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                if self._status("/healthz") == 200 and self._status("/readyz") == 200:
                    self.start_to_ready_s = time.monotonic() - started
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the worker was not ready within {timeout_s:.0f} s")

    def _status(self, path: str) -> int:
        return _get(f"http://127.0.0.1:{self.port}{path}")[0]

    def metric_sum(self, name: str) -> float:
        """The sum of every sample of ``name`` on the worker's /metrics."""
        _, text = _get(f"http://127.0.0.1:{self.port}/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, timeout_s: float = 60) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
