"""Paced live load, run as its own process: ``key<TAB>value`` lines into kcat at a steady rate.

``python -m sentistream.bench.pace --kcat-config C --topic T --rate R FILE`` writes the
file's lines to a kcat producer's standard input, as many as are due every millisecond, then
waits for kcat to deliver them and prints one JSON line: the lines sent, the seconds it took,
and the CPU seconds of this process and of kcat. kcat reaches the cluster with the benchmark's
configuration file C (servers, TLS, SASL; see :mod:`sentistream.bench.kcat_config`) and the
``--kcat-property`` values beside it, so no secret is on a command line. Running it apart
from the benchmark keeps the load generator's CPU out of the measuring process and lets it be
reported on its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from sentistream.bench.kcat import produce_args
from sentistream.bench.kcat_config import KcatConnection

__all__ = ["due", "pace"]

TICK_S = 0.001


def due(rate: float, elapsed_s: float, total: int) -> int:
    """How many lines should have been sent ``elapsed_s`` into a run at ``rate`` per second."""
    return min(total, int(rate * elapsed_s) + 1)


def pace(
    lines: Sequence[bytes],
    out: IO[bytes],
    rate: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Write ``lines`` to ``out`` at ``rate`` per second, a millisecond's worth at a time."""
    started, sent = clock(), 0
    while sent < len(lines):
        target = due(rate, clock() - started, len(lines))
        if target > sent:
            out.write(b"".join(lines[sent:target]))
            out.flush()
            sent = target
        else:
            sleep(TICK_S)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kcat-config", type=Path, required=True, help="kcat's -F file")
    parser.add_argument(
        "--kcat-property", action="append", default=[], help="NAME=VALUE for kcat's -X"
    )
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--linger-ms", type=int, default=1)
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    lines = [line + b"\n" for line in args.file.read_bytes().split(b"\n") if line]
    connection = KcatConnection(args.kcat_config, tuple(args.kcat_property))
    producer = subprocess.Popen(
        produce_args(connection, args.topic, args.linger_ms), stdin=subprocess.PIPE
    )
    assert producer.stdin is not None
    started = time.monotonic()
    pace(lines, producer.stdin, args.rate)
    producer.stdin.close()
    code = producer.wait()
    seconds = time.monotonic() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    kcat = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "sent": len(lines),
                "seconds": round(seconds, 3),
                "cpu_s_pacer": round(own.ru_utime + own.ru_stime, 3),
                "cpu_s_kcat": round(kcat.ru_utime + kcat.ru_stime, 3),
                "kcat_exit": code,
            }
        )
    )
    sys.exit(1 if code else 0)


if __name__ == "__main__":
    main()
