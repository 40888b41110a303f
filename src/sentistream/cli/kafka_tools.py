"""Commands for people trying Kafka by hand: produce, tail, create-topics."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from sentistream.cli.connect import (
    CONNECT_TIMEOUT_S,
    connect,
    topic_names,
    topic_partitions,
    worker_settings,
)
from sentistream.cli.options import connection_options, log, setting_option
from sentistream.cli.settings_options import FloatRange, IntRange
from sentistream.connection import KafkaConnection
from sentistream.worker.settings import ENV_PREFIX

__all__ = ["create_topics", "produce", "tail"]

# `tail` explains itself when nothing arrived this long after it started.
TAIL_HINT_AFTER_S = 5.0


@click.command()
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(path_type=Path),
    help="Sentiment140-layout .csv, or a text file with one tweet per line.",
)
@setting_option("input_topic", aliases=["--topic"])
@click.option(
    "--rate",
    type=FloatRange(min=0, min_open=True),
    default=None,
    help="Tweets per second (default: flat out).",
)
@click.option("--limit", type=IntRange(min=1), default=None, help="Send at most N tweets.")
@click.option("--loop", is_flag=True, help="Start again at the end of the file, forever.")
@connection_options
def produce(
    path: Path,
    input_topic: str,
    rate: float | None,
    limit: int | None,
    loop: bool,
    connection: KafkaConnection,
) -> None:
    """Send tweets from a file to a topic as JSON {"id", "text"} messages keyed by id."""
    from tqdm import tqdm

    from sentistream.replay import Pacer, ReplayError, read_tweets, replay
    from sentistream.worker.backends.kafka_python.tools import CLIENT_ERRORS, open_producer

    try:
        items = read_tweets(path)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    if limit is not None:
        items = items[:limit]
    try:
        if input_topic not in topic_names(connection):
            raise _missing(input_topic, "--input-topic", connection)
    except CLIENT_ERRORS as exc:
        raise click.ClickException(
            f"listing the topics of {connection.bootstrap_servers}: {exc}"
        ) from exc
    producer = connect(open_producer, connection)
    try:
        done = replay(
            producer,
            input_topic,
            items,
            pacer=Pacer(rate),
            loop=loop,
            progress=lambda items: tqdm(
                items, unit="tweet", desc=f"-> {input_topic}", file=sys.stderr, disable=None
            ),
        )
    except CLIENT_ERRORS as exc:
        raise click.ClickException(f"sending to {input_topic} failed: {exc}") from exc
    finally:
        producer.close()
    if done.interrupted:
        log("interrupted")
    if done.failures:
        raise click.ClickException(
            f"{len(done.failures)} of {done.sent} tweets were not acknowledged by Kafka; "
            f"the first error: {done.failures[0]}"
        )
    rate_done = done.sent / max(done.elapsed_s, 1e-9)
    log(f"sent {done.sent} tweets to {input_topic} in {done.elapsed_s:.1f} s ({rate_done:.0f}/s)")


@click.command()
@setting_option("output_topic", aliases=["--topic"])
@click.option("--from-beginning", is_flag=True, help="Start at the oldest label, not the newest.")
@click.option(
    "--max", "max_messages", type=IntRange(min=1), default=None, help="Stop after N labels."
)
@click.option(
    "--timeout",
    type=FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds without a new label.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON values.")
@click.option("--no-header", is_flag=True, help="Leave out the line naming the columns.")
@click.option(
    "--summary",
    is_flag=True,
    help="End with counts, throughput and latency; exit 1 if no label was seen.",
)
@click.option(
    "--isolation-level",
    type=click.Choice(["read_committed", "read_uncommitted"]),
    default=None,
    help="read_committed shows only labels of committed transactions, as downstream readers "
    "of an exactly-once worker must read [default: read_committed when "
    "SENTISTREAM_PROCESSING_GUARANTEE is exactly-once, else read_uncommitted]",
)
@connection_options
def tail(
    output_topic: str,
    from_beginning: bool,
    max_messages: int | None,
    timeout: float | None,
    as_json: bool,
    no_header: bool,
    summary: bool,
    isolation_level: str | None,
    connection: KafkaConnection,
) -> None:
    """Print labelled tweets from the output topic as they arrive (Ctrl-C to stop).

    Columns: the label, its probability, where the tweet came from (p2@0: partition 2 of the
    input topic, offset 0), the text. Only labels written after tail starts are shown unless
    --from-beginning is given.
    """
    from sentistream.tail import HEADER, LEGEND, Summary, follow, format_label, poll_values
    from sentistream.worker.backends.kafka_python.tools import open_consumer, read_from

    if isolation_level is None:
        guarantee = os.environ.get(ENV_PREFIX + "PROCESSING_GUARANTEE", "").lower()
        isolation_level = "read_committed" if guarantee == "exactly-once" else "read_uncommitted"
    consumer = connect(
        lambda config: open_consumer(
            config, from_beginning=from_beginning, isolation_level=isolation_level
        ),
        connection,
    )
    if not read_from(
        consumer, output_topic, from_beginning=from_beginning, timeout_s=CONNECT_TIMEOUT_S
    ):
        consumer.close()
        raise _missing(output_topic, "--output-topic", connection)
    if not as_json and not no_header:
        log(LEGEND)
        click.echo(HEADER)
    seen = Summary()

    def emit(value: bytes | None) -> None:
        text = (value or b"").decode("utf-8", "replace") if as_json else format_label(value)
        click.echo(text)
        seen.add(value)

    try:
        follow(
            lambda: poll_values(consumer),
            emit,
            max_messages=max_messages,
            idle_timeout_s=timeout,
            hint_after_s=TAIL_HINT_AFTER_S,
            hint=lambda: log(_nothing_yet(output_topic, from_beginning)),
        )
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    if summary:
        log(seen.render())
        if not seen.total:
            sys.exit(1)


@click.command("create-topics")
@click.option(
    "--partitions",
    type=IntRange(min=1),
    default=3,
    show_default=True,
    help="Partitions of the input and output topics (the most workers that help).",
)
@setting_option("input_topic")
@setting_option("output_topic")
@setting_option("dlq_topic")
@connection_options
def create_topics(
    partitions: int,
    input_topic: str,
    output_topic: str,
    dlq_topic: str,
    connection: KafkaConnection,
) -> None:
    """Create the input, output and dead-letter topics (those that exist are left alone)."""
    from sentistream.worker.backends.kafka_python.admin import create_topics as create
    from sentistream.worker.backends.kafka_python.tools import CLIENT_ERRORS

    wanted = {input_topic: partitions, output_topic: partitions, dlq_topic: 1}
    try:
        existing = topic_partitions(connection)
        missing = {name: count for name, count in wanted.items() if name not in existing}
        if missing:
            create(worker_settings(connection), missing)
    except CLIENT_ERRORS as exc:
        raise click.ClickException(
            f"creating topics on {connection.bootstrap_servers}: {exc}"
        ) from exc
    for name, count in wanted.items():
        if name in missing:
            log(f"{name}: created ({_partitions(count)})")
            continue
        log(f"{name}: exists ({_partitions(existing[name])})")
        if name != dlq_topic and existing[name] != count:
            log(
                f"warning: {name} has {_partitions(existing[name])}, not the {count} asked for; "
                f"it was left as it is (at most {existing[name]} workers share it). Kafka can "
                f"add partitions (kafka-topics.sh --alter --topic {name} --partitions {count}), "
                "which moves keys to other partitions"
            )


def _nothing_yet(topic: str, from_beginning: bool) -> str:
    """What ``tail`` says when no label came within :data:`TAIL_HINT_AFTER_S`."""
    if from_beginning:
        return f"no labels on {topic} yet: is a worker running and a producer sending?"
    return (
        f"no new labels on {topic} in {TAIL_HINT_AFTER_S:.0f} s; tail shows labels "
        "written from now on: add --from-beginning to see the earlier ones"
    )


def _missing(topic: str, flag: str, connection: KafkaConnection) -> click.ClickException:
    servers = connection.bootstrap_servers
    return click.ClickException(
        f"topic {topic!r} does not exist on {servers}; create it with `sentistream "
        f"create-topics --bootstrap-servers {servers} {flag} {topic}` (or start the worker "
        "with --create-topics)"
    )


def _partitions(count: int) -> str:
    return f"{count} partition" + ("" if count == 1 else "s")
