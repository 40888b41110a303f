"""``sentistream worker``: wiring. Builds the settings' Kafka backend, the model, the metrics
and the HTTP probes, runs the loop until a stop, and turns what ended it into an exit code.

The pieces live beside it: :mod:`.lifecycle` (signals, health, the shutdown deadline),
:mod:`.classifier` (ONNX Runtime), :mod:`.connect` (reaching Kafka), :mod:`.pipelining`,
:mod:`.http`; the loop and its stages in :mod:`sentistream.worker.core`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import NoReturn, TypeVar

from sentistream.connection import ConnectionSettingsError
from sentistream.worker.app.classifier import load_served
from sentistream.worker.app.connect import (
    CannotConnect,
    connect_with_retry,
    wait_until_reachable,
)
from sentistream.worker.app.http import HealthServer, make_app
from sentistream.worker.app.lifecycle import Lifecycle, SignalWatcher
from sentistream.worker.app.pipelining import configure_pipeline
from sentistream.worker.backends import (
    ClientMissing,
    KafkaClient,
    WorkerSink,
    WorkerSource,
    WorkerTransactionalSink,
    kafka_client,
)
from sentistream.worker.core.batcher import BatchPolicy
from sentistream.worker.core.exactly_once import ExactlyOnce
from sentistream.worker.core.fields import FieldMap, parse_paths
from sentistream.worker.core.guarantee import ProcessingGuarantee
from sentistream.worker.core.label_format import LabelFormat
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.model_slot import ModelSlot, ServedModel, warm_up
from sentistream.worker.core.ports import (
    Clock,
    DeadLetterFailed,
    DeliveryFailed,
    ModelBroken,
    Sink,
    SinkUnavailable,
    SourceFailed,
    SystemClock,
    TransactionalSink,
    TransactionalSource,
    TransactionFailed,
)
from sentistream.worker.core.publish import Topics
from sentistream.worker.core.runners import ThreadRunner
from sentistream.worker.core.shadow import Shadow
from sentistream.worker.core.topics import TopicCheck, check_topics
from sentistream.worker.settings import WorkerSettings

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SETUP",
    "FATAL",
    "build_worker",
    "exit_process",
    "run_worker",
]

log = logging.getLogger("sentistream.worker")

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
"""The service failed (model, deliveries) or a stop left records undelivered/uncommitted."""
EXIT_SETUP = 2
"""Something to fix before starting: the metrics port is taken, a topic is missing."""

# The shutdown's time budget after the loop drained (all inside --shutdown-timeout-s): the
# producer's close keeps AFTER_PRODUCER_S for the shadow and leaving the group; the shadow's
# two closes take at most SHADOW_CLOSE_S each and keep LEAVE_GROUP_S; the consumer's close
# (a LeaveGroup request, an offset commit already done) gets what is left, at least
# MIN_LEAVE_GROUP_S.
LEAVE_GROUP_S = 1.0
SHADOW_CLOSE_S = 0.5
AFTER_PRODUCER_S = LEAVE_GROUP_S + 2 * SHADOW_CLOSE_S
MIN_LEAVE_GROUP_S = 0.1

#: Fatal failures of the service: the process exits 1 and its supervisor restarts it.
FATAL = (
    DeliveryFailed,
    ModelBroken,
    SinkUnavailable,
    SourceFailed,
    DeadLetterFailed,
    TransactionFailed,
)


def quiet_kafka_logs(level: str) -> None:
    """kafka-python (and librdkafka) log several ERROR/WARNING lines per reconnect attempt;
    the worker says what matters itself, so the clients' loggers sit under ours (all of it
    at DEBUG)."""
    ours = logging.getLevelName(level)
    for name in ("kafka", "confluent_kafka"):
        logging.getLogger(name).setLevel(
            logging.INFO if ours <= logging.DEBUG else logging.CRITICAL
        )


def exit_process(code: int) -> NoReturn:
    """End the process with ``code`` at once, once :func:`run_worker` has returned.

    By then every client is closed, the offsets committed and the logs written; what the
    interpreter's normal exit would add is tearing down the modules of ONNX Runtime, numpy and
    the Kafka client after the worker said "stopped cleanly", time a supervisor counts
    against the stop timeout.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_worker(settings: WorkerSettings) -> int:
    """Run until SIGTERM/SIGINT; the process exit code."""
    started = time.monotonic()
    quiet_kafka_logs(settings.log_level)
    log.info(
        "starting: %s -> %s (dead letters: %s), group %s, %s, brokers %s, client %s",
        settings.input_topic,
        settings.output_topic,
        settings.dlq_topic,
        settings.group_id,
        settings.processing_guarantee,
        settings.describe(),
        settings.kafka_client,
    )
    try:
        settings.client_config()
        client = kafka_client(settings.kafka_client)
    except (ConnectionSettingsError, ClientMissing) as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        return EXIT_SETUP
    metrics = WorkerMetrics.create(process=True)
    process = Lifecycle(settings)
    try:
        server = HealthServer(
            settings.metrics_host,
            settings.metrics_port,
            make_app(metrics.registry, process.healthy, process.ready),
        ).start()
    except OSError as exc:
        log.error(  # noqa: TRY400 - one line, no traceback: the message is the whole story
            "cannot serve /metrics on %s:%d: %s; choose another --metrics-port (0: any free)",
            settings.metrics_host,
            settings.metrics_port,
            exc.strerror or exc,
        )
        return EXIT_SETUP
    signals = SignalWatcher(process.request_stop, process.request_reload).install()
    runner = ThreadRunner("model-reload")
    try:
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.port)
        served = load_served(settings.model_dir, settings)
        process.models = ModelSlot(
            served,
            metrics,
            folder=settings.model_dir,
            load=lambda folder: load_served(folder, settings),
            runner=runner,
            interval_s=settings.model_check_interval_s,
            now=time.monotonic(),
        )
        return _serve(settings, client, process, process.models, metrics, started)
    finally:
        runner.close()
        server.close()
        signals.close()


def topic_check(settings: WorkerSettings, existing: Collection[str], *, create: bool) -> TopicCheck:
    """Whether the settings' input, output and dead-letter topics are among ``existing``."""
    return check_topics(
        existing,
        input_topic=settings.input_topic,
        output_topic=settings.output_topic,
        dlq_topic=settings.dlq_topic,
        bootstrap_servers=settings.bootstrap_servers,
        create=create,
    )


def _connect(
    process: Lifecycle, client: KafkaClient, what: str, build: Callable[[], T]
) -> T | None:
    """``build()`` retried while Kafka is not reachable yet; None once a stop is requested."""
    return connect_with_retry(
        build,
        what,
        should_stop=process.stop.is_set,
        sleep=process.stop.wait,
        retry_on=client.transient,
    )


def _serve(
    settings: WorkerSettings,
    client: KafkaClient,
    process: Lifecycle,
    models: ModelSlot,
    metrics: WorkerMetrics,
    started: float,
) -> int:
    servers = settings.bootstrap_servers.split(",")
    if not wait_until_reachable(servers, process.stop, process.connection):
        log.info("stopped before Kafka was reachable")
        return EXIT_OK
    try:
        source = _connect(process, client, "consumer", lambda: client.source(settings))
    except CannotConnect as exc:
        log.error("cannot connect to Kafka at %s: %s", settings.bootstrap_servers, exc)  # noqa: TRY400
        return EXIT_SETUP
    if source is None:
        log.info("stopped before Kafka was reachable")
        return EXIT_OK
    try:
        return _consume(settings, client, process, source, models, metrics, started)
    finally:
        source.close(max(MIN_LEAVE_GROUP_S, process.left()))


def _consume(
    settings: WorkerSettings,
    client: KafkaClient,
    process: Lifecycle,
    source: WorkerSource,
    models: ModelSlot,
    metrics: WorkerMetrics,
    started: float,
) -> int:
    existing = source.topics()
    checked = topic_check(settings, existing, create=settings.create_topics)
    if checked.error is not None:
        log.error("%s", checked.error)
        return EXIT_SETUP
    if checked.to_create:
        client.create_topics(settings, checked.to_create)
        log.info(
            "created %s", ", ".join(f"{n} ({p} partitions)" for n, p in checked.to_create.items())
        )
    exactly_once = settings.exactly_once
    transactional: WorkerTransactionalSink | None = None
    sink: WorkerSink | None
    try:
        if exactly_once:
            sink = transactional = _connect(
                process, client, "producer", lambda: client.transactional_sink(settings)
            )
        else:
            sink = _connect(process, client, "producer", lambda: client.sink(settings))
    except TransactionFailed as exc:
        log.error("stopping: %s", exc)  # noqa: TRY400 - the message is the whole story
        return EXIT_FAILED
    if sink is None:
        log.info("stopped before Kafka was reachable")
        return EXIT_OK
    shadow, shadow_sink = _start_shadow(
        settings, client, existing | set(checked.to_create), metrics
    )
    try:
        return _run_loop(
            settings, process, source, sink, transactional, models, metrics, started, shadow
        )
    finally:
        # Best effort inside the deadline: a shadow's labels are for comparison only.
        if shadow is not None:
            shadow.close(min(SHADOW_CLOSE_S, process.left(keep_s=LEAVE_GROUP_S)))
        if shadow_sink is not None:
            shadow_sink.close(min(SHADOW_CLOSE_S, process.left(keep_s=LEAVE_GROUP_S)))


def _start_shadow(
    settings: WorkerSettings, client: KafkaClient, topics: set[str], metrics: WorkerMetrics
) -> tuple[Shadow | None, WorkerSink | None]:
    """The shadow model with a producer of its own, or none (``topics``: those the cluster
    has, as listed at start). A shadow that cannot start is logged and left out: it never
    stops the primary."""
    if not settings.shadow_model_dir:
        return None, None
    topic = settings.shadow_topic or f"{settings.output_topic}.shadow"
    if topic not in topics:
        if not settings.create_topics:
            log.error(
                "shadow model off: the shadow topic %s does not exist (create it, or start with "
                "--create-topics)",
                topic,
            )
            return None, None
        client.create_topics(settings, {topic: 3})
        log.info("created %s (3 partitions)", topic)
    try:
        model = load_served(Path(settings.shadow_model_dir), settings)
        warm_up(model.classifier)
    except Exception as exc:  # a broken shadow is reported, and the primary serves on
        log.error("shadow model off: %s: %s", type(exc).__name__, exc)  # noqa: TRY400
        return None, None
    sink = client.sink(settings)
    log.info(
        "shadow model %s %s labels %.0f %% of the tweets into %s",
        model.info["name"],
        model.info["version"],
        settings.shadow_fraction * 100,
        topic,
    )
    shadow = Shadow(
        model.classifier,
        model.info,
        sink,
        topic,
        metrics,
        fraction=settings.shadow_fraction,
        now_ms=lambda: time.time() * 1000,
        drift_reference=model.drift_reference,
    )
    return shadow.start(), sink


def build_worker(
    settings: WorkerSettings,
    source: TransactionalSource,
    sink: Sink,
    transactional: TransactionalSink | None,
    served: ServedModel,
    metrics: WorkerMetrics,
    *,
    model_slot: ModelSlot | None = None,
    shadow: Shadow | None = None,
    clock: Clock | None = None,
) -> Worker:
    """The loop as the settings describe it: the micro-batching, pipeline depth, input and
    label formats, the model's block in each label, and at-least-once or (with a
    ``transactional`` sink) exactly-once. ``sentistream relabel`` builds its loop here too,
    so its labels are the worker's."""
    clock = clock or SystemClock()
    guarantee: ProcessingGuarantee | None = None
    if transactional is not None:
        guarantee = ExactlyOnce(
            source, transactional, metrics, clock, timeout_s=settings.transaction_timeout_s
        )
    return Worker(
        source,
        sink,
        served.classifier,
        metrics,
        policy=BatchPolicy(
            max_batch_size=settings.max_batch_size, max_wait_s=settings.max_wait_ms / 1000
        ),
        topics=Topics(output=settings.output_topic, dead_letter=settings.dlq_topic),
        input_format=settings.input_format,
        fields=FieldMap.from_settings(settings.text_field, settings.id_field, settings.keep_fields),
        label_format=LabelFormat(
            settings.output_format,
            include_text=settings.output_text,
            keep=parse_paths(settings.keep_fields),
        ),
        max_record_bytes=settings.max_record_bytes,
        max_in_flight=settings.max_in_flight or None,
        model_info=served.info,
        model_slot=model_slot,
        shadow=shadow,
        clock=clock,
        guarantee=guarantee,
        pipeline_depth=configure_pipeline(settings),
    )


def _run_loop(
    settings: WorkerSettings,
    process: Lifecycle,
    source: WorkerSource,
    sink: WorkerSink,
    transactional: WorkerTransactionalSink | None,
    models: ModelSlot,
    metrics: WorkerMetrics,
    started: float,
    shadow: Shadow | None,
) -> int:
    source.subscribe()
    worker = process.worker = build_worker(
        settings,
        source,
        sink,
        transactional,
        models.current,
        metrics,
        model_slot=models,
        shadow=shadow,
    )
    if process.stop.is_set():
        worker.stop()
    log.info("consuming (%.2f s after start)", time.monotonic() - started)
    try:
        while not worker.stopping:
            worker.step()
        # Leave time inside the deadline to close the producer, the shadow and the consumer.
        reserve = min(3.0, settings.shutdown_timeout_s / 4)
        report = worker.drain(process.left(keep_s=reserve))
    except FATAL as exc:
        # Nothing past the last acknowledged batch was committed: a restart redoes it.
        log.error("stopping: %s", exc)  # noqa: TRY400 - the message is the whole story
        sink.close(0.0)
        return EXIT_FAILED
    sink.close(process.left(keep_s=AFTER_PRODUCER_S))
    if not report.clean:
        log.error(
            "stopped with %d record(s) not delivered or not committed (%s); a restart redoes them",
            report.undelivered,
            report.detail,
        )
        return EXIT_FAILED
    log.info("stopped cleanly: every record delivered, offsets committed, left the group")
    return EXIT_OK
