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
from sentistream.worker.loop import (
    BatchPolicy,
    DeliveryFailed,
    InferenceError,
    ModelBroken,
    Topics,
    Worker,
)
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


class _Process:
    """What the signal handler and the health probes share with the main thread."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.stop_requested = False
        self.worker: Worker | None = None

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the batch in hand", signal.Signals(signum).name)
        self.stop_requested = True
        if self.worker is not None:
            self.worker.stop()

    def healthy(self) -> tuple[bool, str]:
        if self.worker is None or self.worker.last_step_at is None:
            return True, "starting"
        idle = time.monotonic() - self.worker.last_step_at
        if idle > self.settings.health_stall_s:
            return False, f"no loop progress for {idle:.0f} s"
        return True, f"last step {idle:.1f} s ago"

    def ready(self) -> tuple[bool, str]:
        if self.worker is None:
            return False, "connecting to Kafka"
        partitions = len(self.worker.source.assignment())
        if partitions == 0:
            return False, "no partitions assigned yet"
        return True, f"{partitions} partition(s) assigned"


def _load_model(settings: WorkerSettings) -> tuple[SentimentModel, dict[str, str]]:
    model = SentimentModel.load(settings.model_dir, threads=settings.ort_threads)
    info = {"name": model.manifest.name, "version": model.manifest.version, "sha256": model.sha256}
    log.info(
        "model %s %s (sha256 %s…) loaded from %s",
        info["name"],
        info["version"],
        model.sha256[:12],
        settings.model_dir,
    )
    return model, info


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
    model, model_info = _load_model(settings)
    metrics = WorkerMetrics.create(process=True)
    metrics.model.info(model_info)

    process = _Process(settings)
    signal.signal(signal.SIGTERM, process.request_stop)
    signal.signal(signal.SIGINT, process.request_stop)
    server = HealthServer(
        settings.metrics_host,
        settings.metrics_port,
        make_app(metrics.registry, process.healthy, process.ready),
    ).start()
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.port)

    def stopping() -> bool:
        return process.stop_requested

    source = connect_with_retry(lambda: KafkaSource(settings), "consumer", should_stop=stopping)
    sink = connect_with_retry(lambda: KafkaSink(settings), "producer", should_stop=stopping)
    if source is None or sink is None:
        log.info("stopped before Kafka was reachable")
        if source is not None:
            source.close()
        server.close()
        return 0
    worker = process.worker = Worker(
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
    if process.stop_requested:
        worker.stop()
    log.info("consuming (%.2f s after start)", time.monotonic() - started)
    try:
        clean = worker.run(settings.shutdown_timeout_s)
    except (DeliveryFailed, ModelBroken) as exc:
        # Nothing past the last acknowledged batch was committed: a restart redoes it.
        log.error("stopping: %s", exc)  # noqa: TRY400 - the message is the whole story
        return 1
    finally:
        source.close()
        sink.close(settings.shutdown_timeout_s)
        server.close()
    if not clean:
        log.error("shut down with undelivered records; their offsets were not committed")
        return 1
    log.info("stopped cleanly: offsets committed, left the group")
    return 0
