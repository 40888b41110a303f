"""``sentistream worker``: wires the loop to Kafka, ONNX Runtime, metrics and signals."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from types import FrameType

import numpy as np
import numpy.typing as npt
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

from sentistream.inference import SentimentModel
from sentistream.worker.http import HealthServer, make_app
from sentistream.worker.kafka_io import KafkaSink, KafkaSource, connect_with_retry
from sentistream.worker.loop import BatchPolicy, InferenceError, Topics, Worker
from sentistream.worker.metrics import WorkerMetrics
from sentistream.worker.settings import WorkerSettings

__all__ = ["OnnxClassifier", "run_worker"]

log = logging.getLogger("sentistream.worker")


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


def run_worker(settings: WorkerSettings) -> int:
    """Run until SIGTERM/SIGINT; the process exit code."""
    started = time.monotonic()
    log.info(
        "starting: %s -> %s (dead letters: %s), group %s, brokers %s",
        settings.input_topic,
        settings.output_topic,
        settings.dlq_topic,
        settings.group_id,
        settings.bootstrap_servers,
    )
    model = SentimentModel.load(settings.model_dir, threads=settings.ort_threads)
    model_info = {
        "name": model.manifest.name,
        "version": model.manifest.version,
        "sha256": model.sha256,
    }
    log.info(
        "model %s %s (sha256 %s…) loaded from %s",
        model_info["name"],
        model_info["version"],
        model.sha256[:12],
        settings.model_dir,
    )
    metrics = WorkerMetrics.create(process=True)
    metrics.model.info(model_info)

    stop_requested = False
    worker: Worker | None = None

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        log.info("received %s: finishing the batch in hand", signal.Signals(signum).name)
        stop_requested = True
        if worker is not None:
            worker.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def healthy() -> tuple[bool, str]:
        if worker is None or worker.last_step_at is None:
            return True, "starting"
        idle = time.monotonic() - worker.last_step_at
        if idle > settings.health_stall_s:
            return False, f"no loop progress for {idle:.0f} s"
        return True, f"last step {idle:.1f} s ago"

    def ready() -> tuple[bool, str]:
        if worker is None:
            return False, "connecting to Kafka"
        partitions = len(worker.source.assignment())
        if partitions == 0:
            return False, "no partitions assigned yet"
        return True, f"{partitions} partition(s) assigned"

    server = HealthServer(
        settings.metrics_host, settings.metrics_port, make_app(metrics.registry, healthy, ready)
    ).start()
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.port)

    source = connect_with_retry(
        lambda: KafkaSource(settings), "consumer", should_stop=lambda: stop_requested
    )
    sink = connect_with_retry(
        lambda: KafkaSink(settings), "producer", should_stop=lambda: stop_requested
    )
    if source is None or sink is None:
        log.info("stopped before Kafka was reachable")
        server.close()
        return 0
    worker = Worker(
        source,
        sink,
        OnnxClassifier(model, settings.length_bucket_size),
        metrics,
        policy=BatchPolicy(
            max_batch_size=settings.max_batch_size, max_wait_s=settings.max_wait_ms / 1000
        ),
        topics=Topics(output=settings.output_topic, dead_letter=settings.dlq_topic),
        input_format=settings.input_format,
        max_record_bytes=settings.max_record_bytes,
        model_info=model_info,
    )
    if stop_requested:
        worker.stop()
    log.info("consuming (%.2f s after start)", time.monotonic() - started)
    try:
        clean = worker.run(settings.shutdown_timeout_s)
    finally:
        source.close()
        sink.close(settings.shutdown_timeout_s)
        server.close()
    if not clean:
        log.error("shut down with undelivered records; their offsets were not committed")
        return 1
    log.info("stopped cleanly: offsets committed, left the group")
    return 0
