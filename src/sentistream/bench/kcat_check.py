"""Whether kcat reaches the cluster, asked once before anything is measured, and why not.

Without this a kcat that cannot connect would show only minutes later, when the first backlog
is produced (after the ceiling and stage measurements), as a timeout. kcat (librdkafka) logs
the cause and then says only ``Failed to acquire metadata``; :func:`explain` picks the cause.

One cause is kcat's own: librdkafka before 2.6.1 answers a SCRAM challenge in a way Kafka 4
brokers refuse as invalid credentials (confluentinc/librdkafka#4895), and Debian 12's kcat
1.7.1 uses librdkafka 2.0.2. Such a kcat cannot log in with SCRAM to a Kafka 4 cluster; the
error says so instead of blaming the password.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping

from sentistream.bench.kcat import KcatFailedError, kcat
from sentistream.bench.kcat_config import KcatConnection

__all__ = ["SCRAM_FIXED_IN", "check", "check_args", "explain", "librdkafka_version"]

#: The first librdkafka whose SCRAM login Kafka 4 brokers accept.
SCRAM_FIXED_IN = (2, 6, 1)


def check_args(connection: KcatConnection, timeout_s: int) -> list[str]:
    """kcat asking the cluster for its metadata (``-L``), waiting at most ``timeout_s``."""
    return [kcat(), "-L", *connection.args(), "-m", str(timeout_s)]


def librdkafka_version(env: Mapping[str, str] | None = None) -> tuple[int, ...] | None:
    """The librdkafka kcat runs on (in environment ``env``), from ``kcat -V``; None if it does
    not say."""
    done = subprocess.run(
        [kcat(), "-V"], env=env, capture_output=True, text=True, check=False, timeout=30
    )
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", done.stdout + done.stderr)
    return tuple(int(part) for part in found.groups()) if found else None


def explain(stderr: str, librdkafka: tuple[int, ...] | None) -> str:
    """The cause in kcat's log ``stderr``: a refused login if there was one, else its last
    line."""
    lines = stderr.strip().splitlines()
    refused = next((line for line in lines if "SASL authentication error: " in line), None)
    if refused is None:
        return lines[-1] if lines else "kcat said nothing"
    why = "the broker refused kcat's login: " + refused.split("SASL authentication error: ")[1]
    if "SCRAM" in refused and librdkafka is not None and librdkafka < SCRAM_FIXED_IN:
        version = ".".join(map(str, librdkafka))
        fixed = ".".join(map(str, SCRAM_FIXED_IN))
        why += (
            f". kcat here runs on librdkafka {version}: Kafka 4 brokers refuse its SCRAM login "
            f"whatever the password (fixed in librdkafka {fixed}, "
            "confluentinc/librdkafka#4895); with such a cluster, give kcat a newer librdkafka"
        )
    return why


def check(connection: KcatConnection, timeout_s: int = 10) -> None:
    """:class:`~sentistream.bench.kcat.KcatFailedError`, saying why, unless kcat reads the
    cluster's metadata with ``connection`` within ``timeout_s``."""
    done = subprocess.run(
        check_args(connection, timeout_s),
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout_s + 30,
    )
    if done.returncode != 0:
        why = explain(done.stderr, librdkafka_version())
        raise KcatFailedError(f"kcat cannot reach Kafka with the connection settings: {why}")
