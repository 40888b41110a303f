"""Reaching Kafka at start: say at once when it cannot be reached, and keep saying so.

kafka-python's clients retry bootstrapping for about 30 s inside their constructors, logging
several lines per attempt and ignoring a stop request meanwhile. So before building them the
worker opens a plain TCP connection to each bootstrap server (one second at most each): the
first failure is logged within a second or two as ``cannot reach HOST:PORT (connection
refused); retrying in 0.5 s``, the back-off waits on an event that a stop request sets, and
:class:`ConnectionState` tells ``/healthz`` how long Kafka has been out of reach.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sentistream.worker.core.ports import CannotConnect

__all__ = [
    "CannotConnect",
    "ConnectionState",
    "connect_with_retry",
    "describe_socket_error",
    "probe",
    "wait_until_reachable",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

PROBE_TIMEOUT_S = 1.0


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]") or "localhost", int(port) if port.isdigit() else 9092


def describe_socket_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "no route to host"
    return exc.strerror or type(exc).__name__


def probe(servers: Sequence[str], timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when one of ``servers`` accepts a TCP connection, else why none did."""
    reasons = []
    for server in servers:
        host, port = _split(server)
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except OSError as exc:
            reasons.append(f"cannot reach {server.strip()} ({describe_socket_error(exc)})")
    return "; ".join(reasons) or "no bootstrap servers given"


@dataclass
class ConnectionState:
    """Shared with the HTTP thread: when the worker started reaching Kafka and what failed."""

    started_at: float
    error: str | None = None
    reachable: bool = False

    def health(self, now: float, grace_s: float) -> tuple[bool, str]:
        """``starting`` for ``grace_s``, then unhealthy while Kafka stays out of reach."""
        waited = now - self.started_at
        if self.reachable or self.error is None:
            return True, "starting"
        if waited <= grace_s:
            return True, f"starting: {self.error} for {waited:.0f} s"
        return False, f"{self.error} for {waited:.0f} s"


def wait_until_reachable(
    servers: Sequence[str],
    stop: threading.Event,
    state: ConnectionState,
    *,
    initial_backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    check: Callable[[Sequence[str]], str | None] = probe,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Probe until a bootstrap server answers (True) or ``stop`` is set (False)."""
    backoff = initial_backoff_s
    while not stop.is_set():
        reason = check(servers)
        if reason is None:
            if state.error is not None:
                log.info("Kafka reachable again after %.0f s", clock() - state.started_at)
            state.reachable, state.error = True, None
            return True
        state.error = reason
        log.warning("%s; retrying in %.1f s", reason, backoff)
        if stop.wait(backoff):
            break
        backoff = min(max_backoff_s, backoff * 2)
    return False


def connect_with_retry(
    connect: Callable[[], T],
    what: str,
    *,
    should_stop: Callable[[], bool],
    initial_backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    sleep: Callable[[float], object] = time.sleep,
    retry_on: tuple[type[BaseException], ...],
) -> T | None:
    """Call ``connect`` until it succeeds, backing off exponentially, while it raises one of
    ``retry_on`` (the client's errors); None if told to stop."""
    backoff = initial_backoff_s
    while not should_stop():
        try:
            return connect()
        except retry_on as exc:
            log.warning("%s: Kafka unavailable (%s); retrying in %.1f s", what, exc, backoff)
            sleep(backoff)
            backoff = min(max_backoff_s, backoff * 2)
    return None
