"""Labels into a real PostgreSQL through Kafka Connect (issue 19, item 5).

The label envelope (``--output-format connect-json``: Kafka Connect's JSON converter with
schemas, see :func:`tests.integration.downstream.label_record`) goes through Kafka Connect
standalone with Debezium's JDBC sink, configured by ``deploy/connect/jdbc-sink-labels.json``
(the file the recipe ``docs/recipes/labels-into-postgres.md`` uses), into a PostgreSQL started
on loopback by ``tools/postgres/pg.sh``.

Fixture ``downstream`` (module scope) -> :class:`tests.integration.downstream.Downstream`:

- PostgreSQL on a free port (state in a fresh directory under /tmp, which Debian's
  ``postgres`` account can reach when the tests run as root), and a Kafka Connect worker
  (``tools/connect/connect.sh``, REST API on a free port, 256 MB heap) against the session's
  broker (``kafka_bootstrap``).
- ``downstream.label_topic`` (3 partitions) is sunk into ``downstream.table`` by the
  connector ``downstream.connector`` from the start. The tests of this module share that
  table: a test that needs a table of its own (say, a real ``sentistream worker
  --output-format connect-json`` writing to its ``topics.output``) calls
  ``downstream.add_sink(topic, table)`` -> connector name, then ``downstream.wait_for_rows(
  table, n, timeout)``, and ``downstream.remove_sink(name)`` at its end.
- ``downstream.sql(query)`` -> rows (lists of strings as psql prints them, NULL as None);
  ``downstream.wait_caught_up(kafka_admin, connector)`` waits until the sink has committed
  every record of its topic (so a count can be trusted not to grow further).
- Failures of the waits carry the connectors' states and the end of Connect's log.
- Everything is stopped at the end of the module, also when a start or a test failed.

Skipped, with the reason, without Java, without Maven (unless the jars are cached) or without
the PostgreSQL server binaries; CI installs all three.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from tests.integration.conftest import FETCH_TIMEOUT_S, TopicFactory, free_ports
from tests.integration.downstream import (
    CONNECT_SH,
    PG_SH,
    Downstream,
    label_record,
    run_script,
    sink_config,
    skip_reason,
)
from tests.integration.worker_process import (
    Topics,
    WorkerProcess,
    both_clients,
    consume_all,
    produce_json,
    real_tweets,
)

N = 240
KEPT = ("author_id",)
TOPIC_READY_TIMEOUT_MS = 30_000
START_TIMEOUT_S = 180  # Connect's worker + connector, on two shared cores
ROWS_TIMEOUT_S = 90


def _fail_start(what: str, done: Any) -> None:
    pytest.fail(
        f"{what} failed (exit {done.returncode})\n--- stdout ---\n{done.stdout}\n"
        f"--- stderr ---\n{done.stderr}",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def downstream(
    kafka_bootstrap: str,
    kafka_admin: KafkaAdminClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Downstream]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    pg_port, rest_port = free_ports(2)
    suffix = uuid.uuid4().hex[:10]
    topic = f"labels-{suffix}"
    connector = f"labels-{suffix}"
    table = "tweet_labels"
    # pytest's tmp dirs are mode 0700; as root, PostgreSQL runs as 'postgres', which must
    # reach its state dir: /tmp itself then, whatever TMPDIR says.
    pg_root = Path(
        tempfile.mkdtemp(prefix="sentistream-pg-", dir="/tmp" if os.geteuid() == 0 else None)
    )
    pg_root.chmod(0o755)
    connect_state = tmp_path_factory.mktemp("connect") / "state"
    pg_env = {
        **os.environ,
        "PG_PORT": str(pg_port),
        "PG_STATE_DIR": str(pg_root / "state"),
        "PG_START_TIMEOUT": "60",
    }
    connect_env = {
        **os.environ,
        "CONNECT_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CONNECT_REST_PORT": str(rest_port),
        "CONNECT_STATE_DIR": str(connect_state),
        "CONNECT_START_TIMEOUT": str(START_TIMEOUT_S),
    }
    jdbc_url = f"jdbc:postgresql://127.0.0.1:{pg_port}/sentistream"

    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, pg_root, ignore_errors=True)

        kafka_admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
        cleanup.callback(_delete_topic, kafka_admin, topic)
        kafka_admin.wait_for_topics([topic], timeout_ms=TOPIC_READY_TIMEOUT_MS)

        cleanup.callback(_stop, PG_SH, pg_env)
        started = run_script(PG_SH, ["start"], pg_env, timeout=120)
        if started.returncode != 0:
            _fail_start("tools/postgres/pg.sh start", started)

        config_file = connect_state.parent / "jdbc-sink-labels.json"
        config_file.write_text(json.dumps(sink_config(connector, topic, table, jdbc_url)))
        cleanup.callback(_stop, CONNECT_SH, connect_env)
        # A first run fetches ~65 MB of jars with Maven before starting.
        started = run_script(
            CONNECT_SH, ["start", str(config_file)], connect_env, FETCH_TIMEOUT_S + START_TIMEOUT_S
        )
        if started.returncode != 0:
            _fail_start("tools/connect/connect.sh start", started)

        yield Downstream(
            bootstrap=kafka_bootstrap,
            label_topic=topic,
            table=table,
            connector=connector,
            pg_env=pg_env,
            connect_env=connect_env,
            rest_url=started.stdout.strip().splitlines()[-1],
            jdbc_url=jdbc_url,
            connect_log=connect_state / "logs" / "connect.log",
        )


def _stop(script: Path, env: dict[str, str]) -> None:
    done = run_script(script, ["stop"], env, timeout=60)
    if done.returncode != 0:
        warnings.warn(f"{script.name} stop failed: {done.stderr}", stacklevel=1)


def _delete_topic(admin: KafkaAdminClient, topic: str) -> None:
    try:
        admin.delete_topics([topic])
    except KafkaError as exc:  # cleanup only: a leftover test topic is harmless
        warnings.warn(f"could not delete {topic}: {exc!r}", stacklevel=1)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------
EVENT_TIME_MS = 1_764_666_000_000  # 2025-12-02T09:00:00Z
LABELS = ("negative", "neutral", "positive")


def payload(i: int, **changes: Any) -> dict[str, Any]:
    """Label number ``i``: ids beyond 2**53 as tweet ids are; every 7th label without an event
    time and every 11th without text (both optional); awkward text on a few."""
    probabilities = [0.1, 0.2, 0.3]
    probabilities[i % 3] = 0.4 + (i % 50) / 100  # the winning class
    total = sum(probabilities)
    p_negative, p_neutral, p_positive = (p / total for p in probabilities)
    text = f"tweet {i} \u00e9\u2028\U0001f600 'quoted' \"double\", comma" if i % 5 == 0 else f"t{i}"
    body: dict[str, Any] = {
        "id": str(1_995_000_000_000_000_000 + i),
        "label": LABELS[i % 3],
        "p_negative": p_negative,
        "p_neutral": p_neutral,
        "p_positive": p_positive,
        "model_name": "sentistream-lstm",
        "model_version": "test",
        "model_sha256": "ab" * 32,
        "source_topic": "tweets",
        "source_partition": i % 3,
        "source_offset": 1_000 + i,
        "event_time": None if i % 7 == 0 else EVENT_TIME_MS + i * 1_000,
        "labeled_at": EVENT_TIME_MS + i * 1_000 + 123,
        "text": None if i % 11 == 0 else text,
        "kept_author_id": f"user{i % 17}",
    }
    body.update(changes)
    return body


def produce(bootstrap: str, topic: str, payloads: list[dict[str, Any]]) -> None:
    """As the worker does: kafka-python, key = the tweet id's bytes."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for body in payloads:
            key, value = label_record(body, KEPT)
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


ROW_COLUMNS = {
    "label": "label",
    "p_negative": "p_negative",
    "p_neutral": "p_neutral",
    "p_positive": "p_positive",
    "model_sha256": "model_sha256",
    "source_partition": "source_partition",
    "source_offset": "source_offset",
    # A timestamp without time zone holding UTC: its epoch is the envelope's milliseconds.
    "event_time_ms": "(extract(epoch from event_time) * 1000)::bigint",
    "labeled_at_ms": "(extract(epoch from labeled_at) * 1000)::bigint",
    "labeled_at_text": "to_char(labeled_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')",
    "text": "text",
    "kept_author_id": "kept_author_id",
}


def row(downstream: Downstream, tweet_id: str) -> dict[str, str | None]:
    columns = ", ".join(f"{expr} as {name}" for name, expr in ROW_COLUMNS.items())
    rows = downstream.sql(f"select {columns} from {downstream.table} where id = '{tweet_id}'")
    assert len(rows) == 1, f"{len(rows)} rows for id {tweet_id}"
    return dict(zip(ROW_COLUMNS, rows[0], strict=True))


def assert_row_holds(downstream: Downstream, body: dict[str, Any]) -> None:
    got = row(downstream, body["id"])
    assert got["label"] == body["label"]
    for name in ("p_negative", "p_neutral", "p_positive"):
        assert float(got[name] or "nan") == pytest.approx(body[name], abs=1e-12), name
    assert got["model_sha256"] == body["model_sha256"]
    assert int(got["source_partition"] or -1) == body["source_partition"]
    assert int(got["source_offset"] or -1) == body["source_offset"]
    if body["event_time"] is None:
        assert got["event_time_ms"] is None
    else:
        assert int(got["event_time_ms"] or -1) == body["event_time"]
    assert int(got["labeled_at_ms"] or -1) == body["labeled_at"]
    assert got["text"] == body["text"]
    assert got["kept_author_id"] == body["kept_author_id"]


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
def test_labels_become_rows_and_a_redelivery_upserts(
    downstream: Downstream, kafka_admin: KafkaAdminClient
) -> None:
    bodies = [payload(i) for i in range(N)]
    started = time.monotonic()
    produce(downstream.bootstrap, downstream.label_topic, bodies)

    assert downstream.wait_for_rows(downstream.table, N, ROWS_TIMEOUT_S) == N
    first_pass_s = time.monotonic() - started

    # The table the sink made from the envelope's schema: timestamps as timestamps, the
    # tweet id (a string, beyond 2**53) as the primary key.
    types = {
        column[0]: column[1]
        for column in downstream.sql(
            "select column_name, data_type from information_schema.columns "
            f"where table_name = '{downstream.table}'"
        )
    }
    assert types["id"] == "text"
    assert types["label"] == "text"
    assert types["p_positive"] == "double precision"
    assert types["source_partition"] == "integer"
    assert types["source_offset"] == "bigint"
    assert types["event_time"] == "timestamp without time zone"
    assert types["labeled_at"] == "timestamp without time zone"
    assert types["kept_author_id"] == "text"
    key = downstream.sql(
        "select a.attname from pg_index i join pg_attribute a "
        "on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
        f"where i.indrelid = '{downstream.table}'::regclass and i.indisprimary"
    )
    assert key == [["id"]]

    # A plain row, one with awkward text, one without event time (7), one without text (11).
    for i in (1, 5, 7, 11, N - 1):
        assert_row_holds(downstream, bodies[i])
    # use.time.zone=UTC: the wall-clock time in the column is UTC.
    assert row(downstream, bodies[1]["id"])["labeled_at_text"] == "2025-12-02T09:00:01.123"

    # A redelivery (the worker crashed after producing, before committing) and one label
    # that changed for an existing tweet (say, a new model), after it in its partition.
    changed = payload(
        4,
        label="negative",
        p_negative=0.97,
        p_neutral=0.02,
        p_positive=0.01,
        model_version="test-2",
        source_offset=9_999,
        labeled_at=EVENT_TIME_MS + 86_400_000,
    )
    produce(downstream.bootstrap, downstream.label_topic, [*bodies, changed])
    downstream.wait_caught_up(kafka_admin, timeout=ROWS_TIMEOUT_S)

    assert downstream.count(downstream.table) == N, "a redelivered label added a row"
    assert_row_holds(downstream, changed)
    assert downstream.sql(
        f"select model_version from {downstream.table} where id = '{changed['id']}'"
    ) == [["test-2"]]
    assert_row_holds(downstream, bodies[5])  # an unchanged one stays as it was
    print(f"{N} labels in PostgreSQL {first_pass_s:.1f} s after the first send")


def test_another_topic_into_a_table_of_its_own(
    downstream: Downstream, topic_factory: TopicFactory
) -> None:
    """The path a test with a real worker takes: a sink of its own for its output topic."""
    topic = topic_factory(partitions=3, prefix="more-labels")
    name = downstream.add_sink(topic, "more_labels")
    try:
        bodies = [payload(i, kept_author_id=None) for i in range(20)]
        produce(downstream.bootstrap, topic, bodies)
        assert downstream.wait_for_rows("more_labels", 20, ROWS_TIMEOUT_S) == 20
        assert downstream.sql("select count(*) from more_labels where kept_author_id is null") == [
            ["20"]
        ]
    finally:
        downstream.remove_sink(name)


@both_clients
def test_a_real_worker_labels_into_postgres_and_a_relabelled_range_upserts(
    downstream: Downstream,
    kafka_admin: KafkaAdminClient,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """``sentistream worker --output-format connect-json`` into PostgreSQL: every label a row
    keyed by the tweet id; a second worker in another group labelling the same input again
    (a redelivery of every label) leaves one row per tweet."""
    table = f"labels_{topics.group.replace('-', '_')}"
    name = downstream.add_sink(topics.output, table)
    try:
        ids = produce_json(downstream.bootstrap, topics.input, real_tweets(150))
        worker = start_worker(output_format="connect-json", keep_fields="id")
        worker.wait_ready()
        assert downstream.wait_for_rows(table, len(ids), ROWS_TIMEOUT_S) == len(ids)
        assert worker.terminate() == 0, worker.log()
        again = start_worker(output_format="connect-json", group_id=f"{topics.group}-again")
        again.wait_ready()
        consume_all(downstream.bootstrap, topics.output, until=2 * len(ids), timeout=90)
        downstream.wait_caught_up(kafka_admin, name)
        assert downstream.sql(f"select count(*), count(distinct id) from {table}") == [
            [str(len(ids)), str(len(ids))]
        ]
        labels = downstream.sql(f"select distinct label from {table}")
        assert {row[0] for row in labels} <= {"negative", "neutral", "positive"}
        sample = downstream.sql(f"select id, model_name, source_topic from {table} limit 1")[0]
        assert sample[0] in ids
        assert sample[2] == topics.input
        assert again.terminate() == 0, again.log()
    finally:
        downstream.remove_sink(name)
