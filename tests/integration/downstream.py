"""A real downstream of the label topic for tests: PostgreSQL (``tools/postgres/pg.sh``) fed by
Kafka Connect standalone with Debezium's JDBC sink (``tools/connect/connect.sh``), and the
label envelope the worker writes with ``--output-format connect-json``.

The fixture that starts them is ``downstream`` in ``test_downstream_postgres.py``; this module
holds what it hands out (:class:`Downstream`) and how a label record is built
(:func:`label_record`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from sentistream.worker.core.label_format import connect_schema

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_SH = REPO_ROOT / "tools" / "postgres" / "pg.sh"
CONNECT_SH = REPO_ROOT / "tools" / "connect" / "connect.sh"
CONNECT_POM = REPO_ROOT / "tools" / "connect" / "pom.xml"
SINK_CONFIG = REPO_ROOT / "deploy" / "connect" / "jdbc-sink-labels.json"

# What psql prints for NULL here (CSV cannot tell NULL from an empty string otherwise).
_NULL = "\x1fNULL\x1f"


# ---------------------------------------------------------------------------------------------
# The label envelope (Kafka Connect's JsonConverter, schemas enabled)
# ---------------------------------------------------------------------------------------------
def label_schema(kept: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The envelope's ``schema``: the worker's own (one optional string field per kept path)."""
    return connect_schema(tuple(kept))


def label_record(
    payload: dict[str, Any], kept: list[str] | tuple[str, ...] = ()
) -> tuple[bytes, bytes]:
    """(key, value) of one label as the worker writes it with ``--output-format connect-json``:
    the key is the tweet id as UTF-8 bytes, the value ``{"schema": ..., "payload": ...}``.

    ``payload`` holds the fields by name (a missing optional field is written as null);
    ``kept`` names the kept input paths, whose values ``payload`` holds under
    ``kept_<path>``."""
    schema = label_schema(kept)
    names = [f["field"] for f in schema["fields"]]
    unknown = set(payload) - set(names)
    if unknown:
        raise ValueError(f"fields not in the label schema: {sorted(unknown)}")
    body = {name: payload.get(name) for name in names}
    value = json.dumps({"schema": schema, "payload": body}, ensure_ascii=False, allow_nan=False)
    return str(payload["id"]).encode("utf-8"), value.encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Which tools are here
# ---------------------------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    """The folder with pg_ctl, as pg.sh finds it (PG_BIN, Debian's folder, then PATH)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def connect_jars_cached() -> bool:
    text = CONNECT_POM.read_text()

    def prop(name: str) -> str:
        start = text.index(f"<{name}>") + len(name) + 2
        return text[start : text.index(f"</{name}>")]

    version = os.environ.get("KAFKA_VERSION") or prop("kafka.version")
    base = REPO_ROOT / ".cache" / "connect" / version
    plugin = base / "plugins" / f"debezium-connector-jdbc-{prop('debezium.version')}"
    return (base / "lib" / ".complete").is_file() and (plugin / ".complete").is_file()


def skip_reason() -> str | None:
    """Why the downstream cannot run here, or None."""
    if shutil.which("java") is None:
        return "Kafka Connect needs Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"
    if shutil.which("mvn") is None and not connect_jars_cached():
        return "Kafka Connect's jars are fetched with Maven once (Debian: apt-get install maven)"
    pg = postgres_bin()
    if pg is None or not (pg / "initdb").is_file() or not (pg / "psql").is_file():
        return "no PostgreSQL server binaries (Debian: apt-get install postgresql), or set PG_BIN"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(os.environ.get("PG_OS_USER", "postgres"))
        except KeyError:
            return "running as root, and there is no 'postgres' account for PostgreSQL to run as"
    return None


# ---------------------------------------------------------------------------------------------
# The running downstream
# ---------------------------------------------------------------------------------------------
def run_script(
    script: Path, args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sink_config(name: str, topic: str, table: str, jdbc_url: str) -> dict[str, Any]:
    """deploy/connect/jdbc-sink-labels.json, pointed at this topic, table and database."""
    document = json.loads(SINK_CONFIG.read_text())
    config = dict(document["config"])
    config.update({"topics": topic, "collection.name.format": table, "connection.url": jdbc_url})
    return {"name": name, "config": config}


@dataclass
class Downstream:
    """PostgreSQL and a Kafka Connect worker, both on loopback, started for a test module.

    ``label_topic`` is already sunk into ``table`` by the connector ``connector``; more
    topic -> table sinks can be added with :meth:`add_sink`.
    """

    bootstrap: str
    label_topic: str
    table: str
    connector: str
    pg_env: dict[str, str]
    connect_env: dict[str, str]
    rest_url: str
    jdbc_url: str
    connect_log: Path
    _connectors: dict[str, str] = field(default_factory=dict)  # name -> topic

    # -- PostgreSQL --------------------------------------------------------------------------
    def sql(self, query: str, timeout: float = 30) -> list[list[str | None]]:
        """Rows of one SQL statement (every value as psql prints it, NULL as None)."""
        done = run_script(
            PG_SH,
            ["psql", "--csv", "-t", "-v", "ON_ERROR_STOP=1", "-P", f"null={_NULL}", "-c", query],
            self.pg_env,
            timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {query!r}: {done.stderr.strip()}")
        rows = csv.reader(io.StringIO(done.stdout, newline=""))
        return [[None if value == _NULL else value for value in row] for row in rows if row]

    def count(self, table: str) -> int | None:
        """Rows in ``table``, or None while the table does not exist (the sink makes it with
        its first batch)."""
        exists = self.sql(f"select to_regclass('public.{table}') is not null")
        if exists != [["t"]]:
            return None
        return int(self.sql(f"select count(*) from {table}")[0][0] or 0)

    def wait_for_rows(self, table: str, n: int, timeout: float = 60) -> int:
        """Wait until ``table`` holds at least ``n`` rows; returns the count. On timeout fails
        with the count seen, the connectors' states and the end of Connect's log."""
        deadline = time.monotonic() + timeout
        seen: int | None = None
        polls = 0
        while time.monotonic() < deadline:
            seen = self.count(table)
            if seen is not None and seen >= n:
                return seen
            polls += 1
            if polls % 8 == 0:
                self._give_up_if_failed(f"waiting for {n} rows in {table} ({seen} so far)")
            time.sleep(0.25)
        raise AssertionError(
            f"{table} has {seen if seen is not None else 'no table and no'} rows, "
            f"not {n}, after {timeout:.0f} s\n{self.diagnostics()}"
        )

    # -- Kafka Connect -----------------------------------------------------------------------
    def rest(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.rest_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def status(self, name: str | None = None) -> dict[str, Any]:
        """GET /connectors/<name>/status (default: the label topic's connector)."""
        result: dict[str, Any] = self.rest("GET", f"/connectors/{name or self.connector}/status")
        return result

    def add_sink(self, topic: str, table: str, timeout: float = 60) -> str:
        """Sink ``topic`` into ``table`` too (the deploy config, another connector created
        through the REST API); returns the connector's name once it and its task run."""
        name = f"sink-{table}"
        self.rest("POST", "/connectors", sink_config(name, topic, table, self.jdbc_url))
        self._connectors[name] = topic
        self.wait_running(name, timeout)
        return name

    def remove_sink(self, name: str) -> None:
        """Delete a connector made by :meth:`add_sink` (say, before its test's topics go)."""
        self.rest("DELETE", f"/connectors/{name}")
        self._connectors.pop(name, None)

    def wait_running(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                status = self.status(name)
            except urllib.error.HTTPError:  # 404 until the herder has created it
                status = {}
            states = [status.get("connector", {}).get("state")]
            states += [task.get("state") for task in status.get("tasks", [])]
            if "FAILED" in states:
                break
            if len(states) >= 2 and all(state == "RUNNING" for state in states):
                return
            time.sleep(0.25)
        raise AssertionError(f"connector {name} is not RUNNING: {status}\n{self.diagnostics()}")

    def wait_caught_up(
        self, admin: KafkaAdminClient, name: str | None = None, timeout: float = 60
    ) -> None:
        """Wait until the connector's consumer group has committed every record of its topic,
        that is, each one has been written to PostgreSQL (Connect commits a sink's offsets
        only after the task's flush)."""
        name = name or self.connector
        topic = self._connectors.get(name, self.label_topic)
        group = f"connect-{name}"
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, client_id="downstream-lag", enable_auto_commit=False
        )
        try:
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            ends = consumer.end_offsets(partitions)
            deadline = time.monotonic() + timeout
            committed: dict[TopicPartition, int] = {}
            while time.monotonic() < deadline:
                offsets = admin.list_group_offsets({group: partitions}).get(group, {})
                committed = {tp: meta.offset for tp, meta in offsets.items() if meta is not None}
                if all(committed.get(tp, -1) >= end for tp, end in ends.items()):
                    return
                self._give_up_if_failed(f"waiting for group {group} to reach {ends}")
                time.sleep(0.5)
        finally:
            consumer.close()
        raise AssertionError(
            f"group {group} has committed {committed}, the topic ends at {ends}, "
            f"after {timeout:.0f} s\n{self.diagnostics()}"
        )

    def failed(self) -> str | None:
        """The name of a connector of ours of which the connector or a task FAILED (Connect
        does not restart them: a wait for rows would only run out its time), or None."""
        for name in [self.connector, *self._connectors]:
            try:
                status = self.status(name)
            except (OSError, ValueError):
                continue
            states = [status.get("connector", {}).get("state")]
            states += [task.get("state") for task in status.get("tasks", [])]
            if "FAILED" in states:
                return name
        return None

    def _give_up_if_failed(self, what: str) -> None:
        name = self.failed()
        if name is not None:
            raise AssertionError(f"{what}: connector {name} FAILED\n{self.diagnostics()}")

    def log_tail(self, lines: int = 60) -> str:
        if not self.connect_log.is_file():
            return f"(no Connect log at {self.connect_log})"
        with self.connect_log.open(encoding="utf-8", errors="replace") as log:
            return "".join(log.readlines()[-lines:])

    def diagnostics(self) -> str:
        statuses = []
        for name in [self.connector, *self._connectors]:
            try:
                statuses.append(json.dumps(self.status(name))[:2000])
            except (OSError, ValueError) as exc:
                statuses.append(f"{name}: status unavailable ({exc!r})")
        return (
            "--- connectors ---\n"
            + "\n".join(statuses)
            + f"\n--- the end of {self.connect_log} ---\n{self.log_tail()}"
        )
