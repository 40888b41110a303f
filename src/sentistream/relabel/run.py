"""One relabel run: resolve the range, read it with the worker's own loop on a bounded source,
stop when every partition reached its end offset and everything is acknowledged (at-least-once)
or committed in its transaction (exactly-once), then count and, with ``compare_with``, compare.

The run's consumer group and transactional id (:func:`run_group_id`) come from the input
topic, the range as given, the model's sha256 and the output topic: the same command started
again continues where the last one committed, and never touches the live workers' group.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sentistream.relabel.compare import Comparison, compare
from sentistream.relabel.marking import MarkedSink, MarkedTransactionalSink
from sentistream.relabel.range import OffsetRange, RangeSpec, resolve
from sentistream.relabel.source import BoundedSource, Progress
from sentistream.worker.app.classifier import load_served
from sentistream.worker.app.connect import CannotConnect, probe
from sentistream.worker.app.main import build_worker, topic_check
from sentistream.worker.backends import kafka_client
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.model_slot import ServedModel
from sentistream.worker.core.ports import TopicPartition
from sentistream.worker.settings import WorkerSettings

__all__ = ["RelabelError", "RelabelJob", "Summary", "run_group_id", "run_relabel"]

log = logging.getLogger("sentistream.relabel")

S = TypeVar("S")

#: How long reading the committed offsets at the start may take beyond the longest a
#: transaction can stay open (a killed exactly-once run's, until the broker aborts it: twice
#: ``--transaction-timeout-s``), during which Kafka answers "unstable offset".
START_MARGIN_S = 10.0


class RelabelError(Exception):
    """Something to fix before a relabel can run (a topic missing, a range that reads nothing
    the topic has, a client relabel does not run on)."""


class ProgressBar(Protocol):
    def show(self, progress: Progress) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class RelabelJob:
    settings: WorkerSettings
    """The worker's settings the relabel runs with (input, output and dead-letter topics,
    model folder, guarantee, micro-batching, formats, connection); its group id and
    transactional id are replaced by the run's own."""
    spec: RangeSpec
    compare_with: str | None = None
    create_topics: bool = False


@dataclass
class Summary:
    group_id: str
    model: dict[str, str]
    ranges: dict[TopicPartition, OffsetRange]
    guarantee: str
    output_topic: str
    dlq_topic: str
    progress: Progress = field(default_factory=lambda: Progress(0, 0, 0))
    read: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    seconds: float = 0.0
    complete: bool = False
    detail: str = ""
    compared_with: str | None = None
    comparison: Comparison | None = None

    @property
    def labelled(self) -> int:
        return sum(self.labels.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "model": self.model,
            "ranges": {
                f"{tp.partition}": [r.start, r.end] for tp, r in sorted(self.ranges.items())
            },
            "processing_guarantee": self.guarantee,
            "output_topic": self.output_topic,
            "dlq_topic": self.dlq_topic,
            "already_done": self.progress.skipped,
            "records_read": self.read,
            "labels": self.labelled,
            "labels_by_class": self.labels,
            "dead_letters": self.dead_letters,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.read / self.seconds, 1) if self.seconds else None,
            "complete": self.complete,
            "detail": self.detail,
            "compared_with": self.compared_with,
            "comparison": None if self.comparison is None else self.comparison.as_dict(),
        }


def run_group_id(input_topic: str, spec: RangeSpec, model_sha256: str, output_topic: str) -> str:
    """``sentistream-relabel-`` and 16 hex digits of the run's identity: the same for the same
    topic, range (as given: ``--to end`` is the end when the run starts), model and output."""
    identity = "\n".join([input_topic, spec.describe(), model_sha256, output_topic])
    return "sentistream-relabel-" + hashlib.sha256(identity.encode()).hexdigest()[:16]


def run_settings(settings: WorkerSettings, group_id: str) -> WorkerSettings:
    """The relabel's own group and transactional id (never the live worker's, whatever
    ``SENTISTREAM_GROUP_ID`` or ``SENTISTREAM_TRANSACTIONAL_ID`` say)."""
    return settings.model_copy(update={"group_id": group_id, "transactional_id": group_id})


def run_relabel(
    job: RelabelJob,
    *,
    bar: Callable[[int], ProgressBar] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Summary:
    """Run ``job`` to the end of its range (or until ``should_stop()``); ``bar(total)`` makes
    the progress display. Raises :class:`RelabelError` before anything is read, and the
    worker's fatal errors (:data:`sentistream.worker.app.main.FATAL`) when the service fails."""
    if job.settings.kafka_client != "kafka-python":
        raise RelabelError("relabel runs on kafka-python only (--kafka-client kafka-python)")
    served = load_served(job.settings.model_dir, job.settings)
    group_id = run_group_id(
        job.settings.input_topic, job.spec, served.info["sha256"], job.settings.output_topic
    )
    settings = run_settings(job.settings, group_id)
    log.info("relabel %s: group and transactional id %s", job.spec.describe(), group_id)
    from sentistream.worker.backends.kafka_python.assigned import connect_assigned

    client = kafka_client(settings.kafka_client)
    source = _connect(settings, client.transient, connect_assigned)
    try:
        _check_topics(job, settings, source.topics(), client.create_topics)
        try:
            ranges = resolve(source, settings.input_topic, job.spec)
        except client.transient as exc:
            raise RelabelError(f"cannot look up the range's offsets: {exc}") from exc
        summary = Summary(
            group_id,
            dict(served.info),
            ranges,
            settings.processing_guarantee,
            settings.output_topic,
            settings.dlq_topic,
        )
        _read(settings, client, BoundedSource(source, ranges), served, summary, bar, should_stop)
    finally:
        source.close(1.0)
    if job.compare_with and summary.complete:
        summary.compared_with = job.compare_with
        summary.comparison = compare_topics(settings, job.compare_with, ranges, served)
    return summary


def _connect(
    settings: WorkerSettings,
    transient: tuple[type[BaseException], ...],
    connect: Callable[[WorkerSettings], S],
) -> S:
    """The consumer, or :class:`RelabelError` saying why Kafka cannot be reached (a relabel
    is run by hand: it says so at once rather than retrying as the worker does)."""
    unreachable = probe(settings.bootstrap_servers.split(","))
    if unreachable is not None:
        raise RelabelError(f"{unreachable}; check --bootstrap-servers")
    try:
        return connect(settings)
    except CannotConnect as exc:
        raise RelabelError(
            f"cannot connect to Kafka at {settings.bootstrap_servers}: {exc}"
        ) from exc
    except transient as exc:
        raise RelabelError(f"Kafka at {settings.bootstrap_servers} did not answer: {exc}") from exc


def _check_topics(
    job: RelabelJob,
    settings: WorkerSettings,
    existing: set[str],
    create: Callable[[WorkerSettings, dict[str, int]], None],
) -> None:
    if settings.input_topic not in existing:
        raise RelabelError(
            f"input topic {settings.input_topic!r} does not exist on {settings.bootstrap_servers}"
        )
    if settings.output_topic in (settings.input_topic, job.compare_with):
        raise RelabelError(
            f"--output-topic {settings.output_topic!r} is the input or the --compare-with topic: "
            "a relabel writes into a topic of its own"
        )
    checked = topic_check(settings, existing, create=job.create_topics)
    if checked.error is not None:
        raise RelabelError(checked.error.replace("start the worker", "run relabel"))
    if checked.to_create:
        create(settings, dict(checked.to_create))
        log.info("created %s", ", ".join(checked.to_create))
    if job.compare_with and job.compare_with not in existing:
        raise RelabelError(f"--compare-with topic {job.compare_with!r} does not exist")


def _read(
    settings: WorkerSettings,
    client: Any,
    bounded: BoundedSource,
    served: ServedModel,
    summary: Summary,
    bar: Callable[[int], ProgressBar] | None,
    should_stop: Callable[[], bool],
) -> None:
    """The worker's loop over the bounded source until the range is done, then its drain.

    The transactional producer starts before the committed offsets are read: its
    ``init_transactions`` fences a killed run's producer and has the broker abort the
    transaction it left open, whose offsets would otherwise hold the read (Kafka answers
    "unstable offset" until that transaction ends)."""
    metrics = WorkerMetrics.create()
    sink: MarkedSink
    if settings.exactly_once:
        sink = MarkedTransactionalSink(client.transactional_sink(settings), settings.group_id)
    else:
        sink = MarkedSink(client.sink(settings), settings.group_id)
    shown: ProgressBar | None = None
    try:
        bounded.start(2 * settings.transaction_timeout_s + START_MARGIN_S)
        started = time.monotonic()
        shown = bar(bounded.progress().total) if bar is not None else None
        transactional = sink if isinstance(sink, MarkedTransactionalSink) else None
        worker = build_worker(settings, bounded, sink, transactional, served, metrics)
        stopped = _loop(worker, bounded, shown, should_stop)
        report = worker.drain(settings.shutdown_timeout_s)
    finally:
        if shown is not None:
            shown.close()
        sink.close(5.0)
    summary.seconds = time.monotonic() - started
    summary.progress = bounded.progress()
    _count(metrics, served, summary)
    summary.complete = bounded.finished and report.clean and not stopped
    details = [report.detail] if report.detail else []
    if stopped:
        details.append("stopped before the end: run the same command again to continue")
    summary.detail = "; ".join(details)


def _loop(
    worker: Worker,
    bounded: BoundedSource,
    shown: ProgressBar | None,
    should_stop: Callable[[], bool],
) -> bool:
    """Step until every partition is read to its end and nothing is in flight; True when
    ``should_stop`` ended it first."""
    while not (bounded.finished and worker.in_flight == 0):
        if should_stop():
            return True
        worker.step()
        if shown is not None:
            shown.show(bounded.progress())
    if shown is not None:
        shown.show(bounded.progress())
    return False


def _count(metrics: WorkerMetrics, served: ServedModel, summary: Summary) -> None:
    registry = metrics.registry
    topic = {"topic": next(iter(summary.ranges)).topic} if summary.ranges else {}
    summary.read = int(registry.get_sample_value("sentistream_records_consumed_total", topic) or 0)
    summary.labels = {
        label: int(
            registry.get_sample_value("sentistream_records_labeled_total", {"label": label}) or 0
        )
        for label in served.classifier.labels
    }
    summary.dead_letters = int(
        sum(
            sample.value
            for family in metrics.dead_lettered.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )


def compare_topics(
    settings: WorkerSettings,
    original_topic: str,
    ranges: dict[TopicPartition, OffsetRange],
    served: ServedModel,
) -> Comparison:
    """Read the relabel's output topic and the original label topic (read_committed) and
    compare their labels of the range's records."""
    from sentistream.worker.backends.kafka_python.reader import read_topic

    return compare(
        read_topic(settings, settings.output_topic),
        read_topic(settings, original_topic),
        ranges,
        served.info["sha256"],
    )
