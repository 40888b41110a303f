"""Each peer measured exactly as the worker's backlog figure is taken.

kcat writes the tweets into a fresh input topic *before* the peer starts; the peer (a
subprocess, from its own interpreter) drains them into a fresh output topic that keeps the
broker's append time. Throughput = distinct tweet ids labelled on the output topic / time
between the first and the last label the broker stored (:func:`~sentistream.bench.labels.
count_labels`, as for the worker). CPU seconds of the peer and the broker are read from
``/proc`` from the peer's ``ready`` line (model loaded, clients made) until the last label is
stored; peak RSS is the peer's ``VmHWM`` then. The bench stops the peer (SIGTERM) once every
label is on the topic. A peer that cannot run is reported as not run, with why.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import sentistream
from sentistream.bench.e2e import Session
from sentistream.bench.labels import count_labels
from sentistream.bench.peers.common import READY
from sentistream.bench.procstat import peak_rss_mb
from sentistream.bench.stages import payloads

__all__ = ["PLAIN_LOOP", "QUIX_APP", "Peer", "PeerRun", "peer_command", "run_peer", "run_peers"]

Log = Callable[[str], None]

SRC = Path(sentistream.__file__).resolve().parents[1]
"""The ``src`` folder of the running ``sentistream``: every peer runs this same code."""


@dataclass(frozen=True)
class Peer:
    key: str
    name: str
    module: str


PLAIN_LOOP = Peer("plain_loop", "plain kafka-python loop", "sentistream.bench.peers.plain_loop")
QUIX_APP = Peer(
    "quix_app", "Quix Streams app (per-record apply)", "sentistream.bench.peers.quix_app"
)
_PEERS = (PLAIN_LOOP, QUIX_APP)


@dataclass(frozen=True)
class PeerRun:
    key: str
    name: str
    library: str
    python: str
    tweets: int
    labels_on_topic: int
    duplicates: int
    span_s: float
    throughput_per_s: float
    start_to_ready_s: float
    peak_rss_mb: float
    cpu_s: dict[str, float]
    topics: dict[str, str]


def peer_command(
    peer: Peer,
    python: Path | str,
    bootstrap: str,
    topics: Mapping[str, str],
    model_dir: Path,
    *,
    count: int = 0,
) -> list[str]:
    """The command line of ``peer`` run by ``python`` between the run's two topics."""
    command = [str(python), "-m", peer.module, "--bootstrap", bootstrap]
    command += ["--input", topics["input"], "--output", topics["output"]]
    command += ["--model-dir", str(model_dir), "--group", f"g-{topics['input']}"]
    return command + (["--count", str(count)] if count else [])


def peer_environment(inherited: Mapping[str, str]) -> dict[str, str]:
    """``inherited`` with this checkout's ``src`` first on ``PYTHONPATH``."""
    path = [str(SRC), *filter(None, inherited.get("PYTHONPATH", "").split(os.pathsep))]
    return {**inherited, "PYTHONPATH": os.pathsep.join(path)}


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    """The library the peer announced on its ``ready`` line."""
    stdout: IO[bytes] | None = process.stdout
    assert stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readable, _, _ = select.select([stdout], [], [], 0.2)
        if readable:
            line = stdout.readline().decode().strip()
            if line.startswith(READY):
                # the rest is read and dropped, so a chatty peer never blocks on a full pipe
                threading.Thread(target=stdout.read, daemon=True).start()
                return line.removeprefix(READY).strip()
            if not line and process.poll() is not None:
                break
        elif process.poll() is not None:
            break
    raise RuntimeError(
        "exited before it was ready" if process.poll() is not None else "not ready in time"
    )


def _wait_labels(
    session: Session, process: subprocess.Popen[bytes], topic: str, count: int, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while (stored := session.stored(topic)) < count:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} after {stored} labels")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {stored} of {count} labels arrived in {timeout_s:.0f} s")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_peer(
    session: Session,
    peer: Peer,
    python: Path | str,
    model_dir: Path,
    texts: Sequence[str],
    *,
    log: Log = print,
    timeout_s: float = 1800,
) -> PeerRun:
    """``peer`` through a kcat backlog of ``texts``, measured as the worker's backlog is."""
    topics = session.create_topics(f"peer-{peer.key.replace('_', '-')}")
    items = payloads(texts, "peer-")
    fill_s, fill_cpu = session.fill(topics["input"], items)
    log(f"{peer.name}: kcat produced {len(items):,} tweets in {fill_s:.2f} s; starting it")
    with tempfile.TemporaryDirectory(prefix="sentistream-peer-") as folder:
        errors = Path(folder) / "stderr.log"
        with errors.open("wb") as stderr:
            started = time.monotonic()
            process = subprocess.Popen(
                peer_command(peer, python, session.broker.bootstrap, topics, model_dir),
                env=peer_environment(os.environ),
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
            try:
                library = _wait_ready(process, timeout_s=120)
                ready_s = time.monotonic() - started
                meter = session.meter({"peer": process.pid}).start()
                _wait_labels(session, process, topics["output"], len(items), timeout_s)
                cpu = meter.stop() | {"load generator (kcat, before the clock)": round(fill_cpu, 3)}
                rss = peak_rss_mb(process.pid)
            except RuntimeError as exc:
                raise RuntimeError(f"{peer.name} {exc}; its stderr:\n{_tail(errors)}") from None
            finally:
                _stop(process)
    count = count_labels(session.labels(topics["output"]), {k.decode() for k, _ in items})
    if count.missing:
        raise RuntimeError(f"{peer.name}: {count.missing} labels missing on {topics['output']}")
    log(
        f"  {count.distinct:,} labels on the output topic in {count.span_s:.2f} s = "
        f"{count.throughput_per_s:,.0f} tweets/s ({library}); CPU s {cpu}, peak RSS {rss:.0f} MB"
    )
    return PeerRun(
        key=peer.key,
        name=peer.name,
        library=library,
        python=str(python),
        tweets=len(items),
        labels_on_topic=count.distinct,
        duplicates=count.duplicates,
        span_s=count.span_s,
        throughput_per_s=count.throughput_per_s,
        start_to_ready_s=ready_s,
        peak_rss_mb=rss,
        cpu_s=cpu,
        topics=dict(topics),
    )


def run_peers(
    session: Session,
    model_dir: Path,
    texts: Sequence[str],
    *,
    quix_python: Path | None,
    quix_missing: str = "no --quix-python given",
    log: Log = print,
) -> dict[str, Any]:
    """Both peers on ``texts`` (JSON data: ``runs`` and ``not_run``, each with why)."""
    result: dict[str, Any] = {"tweets": len(texts), "model_dir": str(model_dir), "runs": []}
    not_run: list[dict[str, str]] = []
    if session.broker.connection.security_protocol != "PLAINTEXT":
        reason = "the peers connect in PLAINTEXT only (run bench without --bootstrap-servers)"
        log(f"peers not run: {reason}")
        return result | {"not_run": [{"name": p.name, "reason": reason} for p in _PEERS]}
    pythons: dict[str, Path | str | None] = {PLAIN_LOOP.key: sys.executable}
    pythons[QUIX_APP.key] = quix_python
    for peer in _PEERS:
        python = pythons[peer.key]
        if python is None:
            log(f"{peer.name} not run: {quix_missing}")
            not_run.append({"name": peer.name, "reason": quix_missing})
            continue
        try:
            run = run_peer(session, peer, python, model_dir, texts, log=log)
        except RuntimeError as exc:
            log(f"{peer.name} not run: {exc}")
            lines = str(exc).splitlines()
            reason = lines[0] if len(lines) < 3 else f"{lines[0]} {lines[-1].strip()}"
            not_run.append({"name": peer.name, "reason": reason})
            continue
        result["runs"].append(asdict(run))
    return result | {"not_run": not_run}
