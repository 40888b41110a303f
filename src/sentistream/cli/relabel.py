"""The command for operators after a model change: relabel a range of history. Flags in,
:func:`sentistream.relabel.run.run_relabel`, summary out."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sentistream.cli.options import log
from sentistream.cli.settings_options import (
    Option,
    build_settings,
    click_type,
    settings_options,
)
from sentistream.connection import KafkaConnection
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

__all__ = ["relabel"]

F = TypeVar("F", bound=Callable[..., Any])

#: The worker's settings a relabel takes, with the worker's flags and variables, so it reads,
#: batches and writes as the live worker does.
WORKER_FIELDS = (
    "dlq_topic",
    "processing_guarantee",
    "max_batch_size",
    "max_wait_ms",
    "length_bucket_size",
    "pipeline_depth",
    "input_format",
    "text_field",
    "id_field",
    "keep_fields",
    "output_text",
    "output_format",
    "output_compression",
    "isolation_level",
    "max_record_bytes",
    "transaction_timeout_s",
    "ort_threads",
    "log_level",
)

EXIT_INCOMPLETE = 1
EXIT_SETUP = 2


def _worker_options(command: F) -> F:
    for name in reversed(WORKER_FIELDS):
        info = WorkerSettings.model_fields[name]
        flag = "--" + name.replace("_", "-")
        is_flag = info.annotation is bool
        command = click.option(
            f"{flag}/--no-{flag[2:]}" if is_flag else flag,
            name,
            cls=Option,
            type=None if is_flag else click_type(info),
            is_flag=is_flag,
            default=info.default,
            show_default=True,
            envvar=ENV_PREFIX + name.upper(),
            show_envvar=True,
            help=info.description,
        )(command)
    return command


@click.command()
@click.option("--input-topic", required=True, help="Topic of the tweets to label again.")
@click.option(
    "--from",
    "from_",
    metavar="WHEN",
    help="Start: an ISO-8601 time (2026-12-01T10:00:00Z; UTC without a zone), `beginning` "
    "or `end`. The first record stamped at or after it.",
)
@click.option(
    "--to", "to", metavar="WHEN", help="End (excluded), as --from; `end`: the newest offset."
)
@click.option(
    "--offsets",
    metavar="P:START-END,...",
    help="Instead of --from/--to: offset ranges per partition (END excluded), e.g. "
    "0:100-200,1:0-50.",
)
@click.option(
    "--model-dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The model folder to label with (model.onnx, tokenizer.json, manifest.json).",
)
@click.option("--output-topic", required=True, help="Topic the new labels go to.")
@click.option(
    "--compare-with",
    metavar="TOPIC",
    help="The original label topic: count the labels that differ, matched by source "
    "partition and offset, as a confusion table.",
)
@click.option("--create-topics", is_flag=True, help="Create a missing output or dead-letter topic.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--progress/--no-progress", default=True, help="The progress bar on stderr.")
@_worker_options
@settings_options(KafkaConnection, ENV_PREFIX)
def relabel(**flags: Any) -> None:
    """Label a bounded range of the input topic again with a chosen model, into a chosen
    topic, then exit.

    It reads with a consumer of its own on assigned partitions (it never joins the live
    workers' group) and keeps its progress under a group of its own, named from the topic,
    the range as given, the model's sha256 and the output topic: the same command started
    again continues where the last one stopped. Labels, dead letters and micro-batches are
    the worker's (same loop, same label format, model block and source coordinates).
    Exactly-once (--processing-guarantee exactly-once) writes each micro-batch and its
    offsets in one transaction: stopped and started again, it neither repeats nor skips a
    record (readers use read_committed). Runs on kafka-python only.

    Exit 0 when the whole range is labelled and committed, 1 when it stopped before, 2 for
    settings to fix.
    """
    from sentistream.relabel.range import RangeError, RangeSpec, parse_offsets, parse_when

    job_flags = {k: flags.pop(k) for k in ("from_", "to", "offsets")}
    compare_with = flags.pop("compare_with")
    create, as_json, progress = (flags.pop(k) for k in ("create_topics", "as_json", "progress"))
    try:
        spec = _spec(job_flags, RangeSpec, parse_offsets, parse_when)
    except RangeError as exc:
        raise click.UsageError(str(exc)) from exc
    settings = build_settings(WorkerSettings, {**flags, "kafka_client": "kafka-python"})
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from sentistream.worker.app.main import exit_process

    # Everything is closed and committed: skip the interpreter's slow module teardown.
    exit_process(_run(settings, spec, compare_with, create, as_json, progress))


def _spec(flags: dict[str, Any], spec: Any, parse_offsets: Any, parse_when: Any) -> Any:
    if flags["offsets"]:
        if flags["from_"] or flags["to"]:
            raise click.UsageError("give either --offsets or --from/--to, not both")
        return spec(offsets=parse_offsets(flags["offsets"]))
    if not (flags["from_"] and flags["to"]):
        raise click.UsageError("give --from WHEN and --to WHEN (or --offsets)")
    return spec(parse_when(flags["from_"]), parse_when(flags["to"]))


def _run(
    settings: WorkerSettings,
    spec: Any,
    compare_with: str | None,
    create: bool,
    as_json: bool,
    progress: bool,
) -> int:
    from sentistream.manifest import ManifestError
    from sentistream.relabel.range import RangeError
    from sentistream.relabel.report import TqdmBar, render
    from sentistream.relabel.run import RelabelError, RelabelJob, run_relabel
    from sentistream.worker.app.main import FATAL, quiet_kafka_logs

    quiet_kafka_logs(settings.log_level)
    stop = {"asked": False}

    def ask_stop(signum: int, _frame: object) -> None:
        if stop["asked"]:  # asked twice: stop now, without draining
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        stop["asked"] = True
        log("relabel: stopping after the batches in hand (again: at once)")

    previous = {s: signal.signal(s, ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = run_relabel(
            RelabelJob(settings, spec, compare_with, create),
            bar=TqdmBar if progress else None,
            should_stop=lambda: stop["asked"],
        )
    except (RelabelError, RangeError, ManifestError) as exc:
        log(f"relabel: {exc}")
        return EXIT_SETUP
    except FATAL as exc:
        log(f"relabel stopped: {exc}; run the same command again to continue")
        return EXIT_INCOMPLETE
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
    else:
        click.echo("\n".join(render(summary)))
    return 0 if summary.complete else EXIT_INCOMPLETE
