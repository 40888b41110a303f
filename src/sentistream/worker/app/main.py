"""``sentistream worker``: wires the loop to Kafka, ONNX Runtime, metrics and signals."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import numpy as np
import numpy.typing as npt
from kafka.errors import KafkaConnectionError, KafkaError
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

from sentistream.connection import ConnectionSettingsError, FailureWatch
from sentistream.inference import SentimentModel
from sentistream.worker.app.connect import CannotConnect, ConnectionState, wait_until_reachable
from sentistream.worker.app.http import HealthServer, make_app
from sentistream.worker.backends import (
    ClientMissing,
    KafkaClient,
    WorkerSink,
    WorkerSource,
    WorkerTransactionalSink,
    kafka_client,
)
from sentistream.worker.backends.kafka_python.io import connect_with_retry, create_topics
from sentistream.worker.core.batcher import BatchPolicy
from sentistream.worker.core.exactly_once import ExactlyOnce
from sentistream.worker.core.guarantee import ProcessingGuarantee
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.model_slot import (
    ModelSlot,
    ServedModel,
    ThreadRunner,
    manifest_fingerprint,
    warm_up,
)
from sentistream.worker.core.ports import (
    DeadLetterFailed,
    DeliveryFailed,
    InferenceError,
    ModelBroken,
    SinkUnavailable,
    SourceFailed,
    SystemClock,
    TransactionFailed,
)
from sentistream.worker.core.publish import Topics
from sentistream.worker.core.shadow import Shadow
from sentistream.worker.core.topics import check_topics
from sentistream.worker.settings import WorkerSettings

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SETUP",
    "PIPELINE_SWITCH_INTERVAL_S",
    "OnnxClassifier",
    "configure_pipeline",
    "effective_pipeline_depth",
    "load_served",
    "run_worker",
    "share_the_gil_finely",
]

log = logging.getLogger("sentistream.worker")

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


class OnnxClassifier:
    """The loop's :class:`Classifier` over a :class:`SentimentModel`."""

    def __init__(self, model: SentimentModel, bucket_size: int = 0) -> None:
        self.model = model
        self.labels = model.labels
        self.bucket_size = bucket_size

    def encode(self, text: str) -> list[int]:
        return self.model.encode(text)

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        try:
            return self.model.predict_ids(ids, bucket_size=self.bucket_size)
        except (Fail, InvalidArgument, RuntimeException) as exc:
            raise InferenceError(str(exc)) from exc


class _Process:
    """What the signal handler and the health probes share with the main thread."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.stop_requested_at: float | None = None
        self.connection = ConnectionState(started_at=time.monotonic())
        self.worker: Worker | None = None
        self.models: ModelSlot | None = None

    def request_reload(self, _signum: int, _frame: FrameType | None) -> None:
        """SIGHUP: look for a new model at the next step (only sets a flag)."""
        if self.models is None:
            log.info("received SIGHUP before the model was loaded: nothing to reload")
            return
        log.info("received SIGHUP: checking %s for a new model", self.settings.model_dir)
        self.models.request_check()

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the batch in hand", signal.Signals(signum).name)
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        self.stop.set()
        if self.worker is not None:
            self.worker.stop()

    def healthy(self) -> tuple[bool, str]:
        now = time.monotonic()
        state = self.worker.state if self.worker is not None else None
        if state is None or state.last_step_at is None:
            return self.connection.health(now, self.settings.health_stall_s)
        idle = now - state.last_step_at
        if idle > self.settings.health_stall_s:
            return False, f"no loop progress for {idle:.0f} s"
        if state.oldest_unacked_at is not None:
            waiting = now - state.oldest_unacked_at
            if waiting > self.settings.max_unacked_age_s:
                return (
                    False,
                    f"records produced {waiting:.0f} s ago still not acknowledged by Kafka",
                )
        return True, f"last step {idle:.1f} s ago"

    def ready(self) -> tuple[bool, str]:
        """From the loop's last snapshot: the HTTP thread never calls into the consumer."""
        if self.worker is None:
            return False, "connecting to Kafka"
        state = self.worker.state
        if state.assigned == 0:
            return False, "no partitions assigned yet"
        paused = ", fetching paused (in-flight limit)" if state.paused else ""
        return True, f"{state.assigned} partition(s) assigned{paused}"

    def deadline(self) -> float:
        """When the shutdown must be over (monotonic)."""
        started = self.stop_requested_at or time.monotonic()
        return started + self.settings.shutdown_timeout_s

    def left(self, keep_s: float = 0.0) -> float:
        """Seconds until the deadline, less ``keep_s`` kept for the steps after this one."""
        return max(0.0, self.deadline() - keep_s - time.monotonic())


def load_served(folder: Path, settings: WorkerSettings) -> ServedModel:
    """Load and verify the model in ``folder`` (a symlink is followed once, so every file comes
    from one folder) as the worker serves it."""
    folder = folder.resolve()
    fingerprint = manifest_fingerprint(folder)
    model = SentimentModel.load(folder, threads=settings.ort_threads)
    info = {"name": model.manifest.name, "version": model.manifest.version, "sha256": model.sha256}
    log.info(
        "model %s %s (sha256 %s…) loaded from %s",
        info["name"],
        info["version"],
        model.sha256[:12],
        folder,
    )
    return ServedModel(
        OnnxClassifier(model, settings.length_bucket_size), info, fingerprint, folder
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
    process = _Process(settings)
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
    signal.signal(signal.SIGTERM, process.request_stop)
    signal.signal(signal.SIGINT, process.request_stop)
    signal.signal(signal.SIGHUP, process.request_reload)
    runner = ThreadRunner()
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


def _serve(
    settings: WorkerSettings,
    client: KafkaClient,
    process: _Process,
    models: ModelSlot,
    metrics: WorkerMetrics,
    started: float,
) -> int:
    servers = settings.bootstrap_servers.split(",")
    if not wait_until_reachable(servers, process.stop, process.connection):
        log.info("stopped before Kafka was reachable")
        return EXIT_OK
    try:
        source = connect_with_retry(
            lambda: _refused_or(client, settings),
            "consumer",
            should_stop=process.stop.is_set,
            sleep=process.stop.wait,
            retry_on=client.transient,
        )
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


def _refused_or(client: KafkaClient, settings: WorkerSettings) -> WorkerSource:
    """``client.source(settings)``; :class:`CannotConnect` when kafka-python's log says the
    broker refused the login or the TLS handshake (it raises only a bootstrap timeout; the
    confluent source raises :class:`CannotConnect` itself)."""
    if client.name != "kafka-python":
        return client.source(settings)
    with FailureWatch() as watch:
        try:
            return client.source(settings)
        except KafkaError:
            why = watch.explain(settings)
            if why is None:
                raise
            if watch.fatal:
                raise CannotConnect(why) from None
            raise KafkaConnectionError(why) from None  # logged, then retried


def _consume(
    settings: WorkerSettings,
    client: KafkaClient,
    process: _Process,
    source: WorkerSource,
    models: ModelSlot,
    metrics: WorkerMetrics,
    started: float,
) -> int:
    existing = source.topics()
    checked = check_topics(
        existing,
        input_topic=settings.input_topic,
        output_topic=settings.output_topic,
        dlq_topic=settings.dlq_topic,
        bootstrap_servers=settings.bootstrap_servers,
        create=settings.create_topics,
    )
    if checked.error is not None:
        log.error("%s", checked.error)
        return EXIT_SETUP
    if checked.to_create:
        create_topics(settings, checked.to_create)
        log.info(
            "created %s", ", ".join(f"{n} ({p} partitions)" for n, p in checked.to_create.items())
        )
    exactly_once = settings.processing_guarantee == "exactly-once"
    transactional: WorkerTransactionalSink | None = None
    sink: WorkerSink | None
    try:
        if exactly_once:
            sink = transactional = connect_with_retry(
                lambda: client.transactional_sink(settings),
                "producer",
                should_stop=process.stop.is_set,
                sleep=process.stop.wait,
                retry_on=client.transient,
            )
        else:
            sink = connect_with_retry(
                lambda: client.sink(settings),
                "producer",
                should_stop=process.stop.is_set,
                sleep=process.stop.wait,
                retry_on=client.transient,
            )
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
        create_topics(settings, {topic: 3})
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
    )
    return shadow.start(), sink


#: The interpreter's GIL switch interval while inference runs on a thread of its own.
PIPELINE_SWITCH_INTERVAL_S = 0.0005


def share_the_gil_finely() -> None:
    """Hand the GIL back and forth every 0.5 ms instead of Python's 5 ms.

    ONNX Runtime releases the GIL while a call runs, but to return it must take the GIL back,
    and the loop's thread, busy tokenizing, gives it up only at the switch interval: each
    inference call (a few ms for a bucket of 32 rows) then waited up to 5 ms more, and the
    two threads barely overlapped. Measured on this machine, idle (2 cores), 20,480 tweets:
    ``predict_ids`` (batches of 256, buckets of 32, one ORT thread) 1.47 s and tokenizing
    0.39 s one after the other; on two threads 1.78 s at 5 ms, 1.57 s at 0.5 ms, 1.52 s at
    0.2 ms (``session.run`` alone: 2.49 s → 2.35 s at 1 ms → 2.30 s at 0.2 ms, against 2.26 s
    for inference by itself).
    """
    sys.setswitchinterval(PIPELINE_SWITCH_INTERVAL_S)


def configure_pipeline(settings: WorkerSettings) -> int:
    """The pipeline depth to run (:func:`effective_pipeline_depth`); a pipelined worker also
    shares the GIL finely (:func:`share_the_gil_finely`)."""
    depth = effective_pipeline_depth(settings)
    if depth > 1:
        share_the_gil_finely()
    return depth


def effective_pipeline_depth(settings: WorkerSettings) -> int:
    """The pipeline depth the worker runs: exactly-once runs the synchronous path (1).

    Its transaction for a batch takes the group generation of the polls since the previous
    batch (``batch_group``), and an abort rewinds the consumer; with batches still in the
    pipeline both would mix batches up, so correctness wins over the overlap.
    """
    if settings.processing_guarantee == "exactly-once" and settings.pipeline_depth > 1:
        log.info("exactly-once: inference is not pipelined (pipeline depth 1)")
        return 1
    return settings.pipeline_depth


def _run_loop(
    settings: WorkerSettings,
    process: _Process,
    source: WorkerSource,
    sink: WorkerSink,
    transactional: WorkerTransactionalSink | None,
    models: ModelSlot,
    metrics: WorkerMetrics,
    started: float,
    shadow: Shadow | None,
) -> int:
    source.subscribe()
    clock = SystemClock()
    guarantee: ProcessingGuarantee | None = None
    if transactional is not None:
        guarantee = ExactlyOnce(
            source, transactional, metrics, clock, timeout_s=settings.transaction_timeout_s
        )
    depth = configure_pipeline(settings)
    worker = process.worker = Worker(
        source,
        sink,
        models.current.classifier,
        metrics,
        policy=BatchPolicy(
            max_batch_size=settings.max_batch_size, max_wait_s=settings.max_wait_ms / 1000
        ),
        topics=Topics(output=settings.output_topic, dead_letter=settings.dlq_topic),
        input_format=settings.input_format,
        max_record_bytes=settings.max_record_bytes,
        max_in_flight=settings.max_in_flight or None,
        model_info=models.current.info,
        model_slot=models,
        shadow=shadow,
        clock=clock,
        guarantee=guarantee,
        pipeline_depth=depth,
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
