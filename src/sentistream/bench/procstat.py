"""CPU seconds and peak memory of processes, read from ``/proc`` (Linux)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuMeter", "cpu_seconds", "peak_rss_mb"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """User + system CPU seconds of ``pid`` so far, its reaped children's included."""
    stat = (proc / str(pid) / "stat").read_text()
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime + cutime + cstime) / _TICKS


def peak_rss_mb(pid: int, proc: Path = Path("/proc")) -> float:
    """The process's peak resident set size (``VmHWM``) in MiB."""
    for line in (proc / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM line in /proc/{pid}/status")


@dataclass
class CpuMeter:
    """CPU seconds each named process spends between :meth:`start` and :meth:`stop`."""

    pids: Mapping[str, int]
    _started: dict[str, float] | None = None

    def start(self) -> CpuMeter:
        self._started = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        if self._started is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        return {
            name: round(cpu_seconds(pid) - self._started[name], 3)
            for name, pid in self.pids.items()
        }
