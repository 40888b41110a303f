"""The connection settings as kcat's configuration: a file only its owner can read, not argv.

kcat is librdkafka's command-line client, so it takes the same properties as the confluent
worker (:func:`~sentistream.worker.backends.confluent.config.librdkafka_config`). They go into a
``key=value`` file given with ``-F`` (mode 0600, in a temporary directory removed afterwards),
never on the command line, where a password would show in ``ps``.

kcat 1.7.1 reads that file as it reads a Java client's properties, with three quirks handled
here:

* it silently ignores ``ssl.endpoint.identification.algorithm`` in a file (not in ``-X``), so
  that property, which holds no secret (``https`` or ``none``), is given with ``-X``;
* it trims whitespace around each value and turns ``\\=`` and ``\\:`` into ``=`` and ``:``;
* it reads a line in a 512-byte buffer, so a longer line is read as two.

A value that would not arrive intact is refused, naming the property, never the value.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sentistream.connection import KafkaConnection
from sentistream.worker.backends.confluent.config import librdkafka_config

__all__ = [
    "ARGV_PROPERTIES",
    "KcatConfigError",
    "KcatConnection",
    "config_text",
    "kcat_connection",
    "kcat_properties",
    "write_config",
]

#: Properties kcat ignores in a ``-F`` file; none of them is secret.
ARGV_PROPERTIES = frozenset({"ssl.endpoint.identification.algorithm"})
#: The longest line (in bytes) kcat reads whole: with its newline and a NUL, 512.
MAX_LINE = 510


class KcatConfigError(ValueError):
    """A setting kcat's configuration file cannot carry intact; the message names it."""


def kcat_properties(connection: KafkaConnection) -> dict[str, str]:
    """librdkafka properties of ``connection``, as text. Raises
    :class:`~sentistream.connection.ConnectionSettingsError` for settings that cannot work."""
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in librdkafka_config(connection.client_config()).items()
    }


def _problem(line: str, value: str) -> str | None:
    if "\n" in value or "\r" in value:
        return "holds a line break"
    if value != value.strip():
        return "starts or ends with whitespace, which kcat trims"
    if "\\=" in value or "\\:" in value:
        return "holds \\= or \\:, which kcat reads as = or :"
    if len(line.encode()) > MAX_LINE:
        return f"makes a line longer than the {MAX_LINE} bytes kcat reads"
    return None


def config_text(properties: Mapping[str, str]) -> str:
    """The ``-F`` file's content: one ``key=value`` line per property but
    :data:`ARGV_PROPERTIES`. Raises :class:`KcatConfigError` for a value kcat would not read
    back intact."""
    lines = []
    for name, value in properties.items():
        if name in ARGV_PROPERTIES:
            continue
        line = f"{name}={value}"
        problem = _problem(line, value)
        if problem is not None:
            raise KcatConfigError(f"kcat cannot be given {name}: its value {problem}")
        lines.append(line + "\n")
    return "".join(lines)


def write_config(path: Path, text: str) -> None:
    """``text`` into a new file ``path`` that only its owner can read or write (0600)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(descriptor, 0o600)  # whatever the umask
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)


@dataclass(frozen=True)
class KcatConnection:
    """How kcat reaches the cluster: the ``-F`` file and the ``-X`` properties beside it."""

    config_file: Path
    properties: tuple[str, ...] = ()
    """``name=value`` of :data:`ARGV_PROPERTIES` (never a secret)."""

    def args(self) -> list[str]:
        args = ["-F", str(self.config_file)]
        for item in self.properties:
            args += ["-X", item]
        return args


@contextlib.contextmanager
def kcat_connection(connection: KafkaConnection) -> Iterator[KcatConnection]:
    """kcat's configuration for ``connection``, in a temporary directory (0700) that is removed
    when the block ends."""
    properties = kcat_properties(connection)
    text = config_text(properties)
    argv = tuple(f"{k}={v}" for k, v in properties.items() if k in ARGV_PROPERTIES)
    with tempfile.TemporaryDirectory(prefix="sentistream-kcat-") as folder:
        path = Path(folder) / "kcat.conf"
        write_config(path, text)
        yield KcatConnection(path, argv)
