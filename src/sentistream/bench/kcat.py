"""kcat (librdkafka's command-line client) as the benchmark's producer and output reader.

Production producers are librdkafka or Java clients that send in large batches; a Python
producer on the same cores as the worker would measure itself instead (see BENCHMARKS.md).
Payloads are written one per line as ``key<TAB>value``: JSON escapes tabs and newlines inside
strings, so neither appears raw in a value. The output is read with ``-f`` (never ``-J``,
which mangles non-ASCII) and split on ``\\n`` only. kcat reaches the cluster through a
:class:`~sentistream.bench.kcat_config.KcatConnection` (a ``-F`` file: no secret in argv).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from sentistream.bench.kcat_config import KcatConnection

__all__ = [
    "KcatError",
    "KcatFailedError",
    "KcatMissingError",
    "consume_args",
    "consume_lines",
    "kcat",
    "produce_args",
    "produce_file",
    "write_payload_file",
]

INSTALL_HINT = (
    "the benchmark produces and reads through kcat (librdkafka's command-line client); "
    "install it with `apt-get install -y kcat` (Debian/Ubuntu; .ci/run does this)"
)


class KcatError(RuntimeError):
    """kcat is missing or cannot do what the benchmark needs; the message says which."""


class KcatMissingError(KcatError):
    pass


class KcatFailedError(KcatError):
    pass


def kcat() -> str:
    """The kcat executable, or :class:`KcatMissingError` saying how to install it."""
    found = shutil.which("kcat") or shutil.which("kafkacat")
    if found is None:
        raise KcatMissingError(INSTALL_HINT)
    return found


def write_payload_file(path: Path, payloads: Iterable[tuple[bytes, bytes]]) -> int:
    """``key<TAB>value`` lines; refuses a payload that would break the line format."""
    count = 0
    with path.open("wb") as out:
        for key, value in payloads:
            if b"\t" in key or b"\n" in key or b"\n" in value:
                raise ValueError(f"payload {key!r} holds a tab or newline")
            out.write(key + b"\t" + value + b"\n")
            count += 1
    return count


def produce_args(connection: KcatConnection, topic: str, linger_ms: int) -> list[str]:
    """kcat producing ``key<TAB>value`` lines, acks=all, batches of up to 10,000 records."""
    return [
        kcat(),
        "-P",
        *connection.args(),
        "-t",
        topic,
        "-K",
        "\t",
        "-z",
        "none",
        "-X",
        "acks=all",
        "-X",
        f"linger.ms={linger_ms}",
        "-X",
        "batch.num.messages=10000",
        "-X",
        "queue.buffering.max.messages=1000000",
    ]


def produce_file(
    connection: KcatConnection, topic: str, path: Path
) -> subprocess.CompletedProcess[bytes]:
    """Produce every line of ``path`` in large batches; returns when all are acknowledged."""
    return subprocess.run(
        [*produce_args(connection, topic, linger_ms=50), "-l", str(path)],  # -l: one per line
        check=True,
        capture_output=True,
        timeout=600,
    )


def consume_args(
    connection: KcatConnection, topic: str, fmt: str, start: str = "beginning"
) -> list[str]:
    """kcat reading ``topic`` from ``start`` (kcat's ``-o``: ``beginning``, ``s@<ms>``...) to
    its end, each record as ``-f fmt``."""
    return [kcat(), "-C", *connection.args(), "-t", topic, "-o", start, "-e", "-q", "-f", fmt]


def consume_lines(
    connection: KcatConnection,
    topic: str,
    fmt: str,
    timeout_s: float = 300,
    start: str = "beginning",
) -> list[bytes]:
    """Every record of ``topic`` from ``start`` (the beginning), formatted with kcat's
    ``-f fmt``; each record's line ends in ``\\n`` and lines are split on ``\\n`` only."""
    done = subprocess.run(
        consume_args(connection, topic, fmt, start),
        check=True,
        capture_output=True,
        timeout=timeout_s,
    )
    return [line for line in done.stdout.split(b"\n") if line]
