"""The worker's loop: poll → micro-batch → classify → publish → guarantee → flow → lag.

This module knows no Kafka client, no ONNX Runtime and no HTTP: it talks to the ports in
:mod:`sentistream.worker.core.ports` and reads time from a :class:`Clock`, so tests drive
:meth:`Worker.step` with in-memory fakes and a fake clock, and never sleep. Each stage is its
own module: :mod:`.batcher`, :mod:`.classify`, :mod:`.pipeline`, :mod:`.publish`,
:mod:`.guarantee`, :mod:`.flow`.

Pipelining (``pipeline_depth`` > 1): the loop's thread polls, decodes and encodes a batch
(:meth:`Classify.prepare`) and hands it to the :class:`~.pipeline.InferenceStage`, whose
thread runs the model while the loop polls the next batch and publishes the previous one.
Once a poll finds the consumer drained, the loop waits for the model (at most as long as the
next poll would wait) before polling again, so a finished batch never sits behind an idle poll.
Finished batches come back in the order they were polled and are published, offered to the
shadow and tracked on the loop's thread, exactly as in the synchronous path (depth 0 or 1:
the same stage, run inline). At most ``pipeline_depth`` batches are between the batcher and
the publisher, and their records count as in flight, so pausing still bounds memory. Each
batch keeps the classifier that encoded it and that model's info, so a model swapped in
while it is being inferred changes only the batches after it. A batch still being inferred
when its partitions are revoked is published anyway (at-least-once: the new owner may label
those records again, as with any delivery still in flight at a rebalance); its offsets are
not committed here. Exactly-once runs the synchronous path (see
:func:`~sentistream.worker.app.pipelining.effective_pipeline_depth`):
its transaction for a batch is tied to the consumer's group generation of the polls since
the previous batch, which pipelining would mix up.

Error kinds:

* anything wrong with one record (whatever its decoding, tokenizing, output or hand-over to
  the producer raises) → its dead letter, counted, committed past;
* a commit refused because a rebalance moved the partition → counted, the new owner redoes it;
* a failure of the service (the model broken, a delivery refused after the producer's
  retries, the producer unable to take any record) → the exception propagates, the worker
  exits non-zero, and its supervisor restarts it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from sentistream.worker.core.batcher import BatchPolicy, MicroBatcher
from sentistream.worker.core.classify import Classify
from sentistream.worker.core.deadline import Deadline
from sentistream.worker.core.drift import DriftSignals
from sentistream.worker.core.fields import FieldMap
from sentistream.worker.core.flow import FlowControl, FlowDecision
from sentistream.worker.core.guarantee import AtLeastOnce, ProcessingGuarantee, ShutdownReport
from sentistream.worker.core.label_format import LabelFormat
from sentistream.worker.core.messages import InputFormat, InputRecord
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.model_slot import ModelSlot, ServedModel
from sentistream.worker.core.pipeline import Finished, InferenceStage
from sentistream.worker.core.ports import (
    Classifier,
    Clock,
    Sink,
    Source,
    SystemClock,
    TopicPartition,
)
from sentistream.worker.core.publish import Publisher, Topics
from sentistream.worker.core.runners import InlineRunner, Runner, ThreadRunner
from sentistream.worker.core.shadow import Shadow

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "Worker", "WorkerState", "default_max_in_flight"]

log = logging.getLogger(__name__)

#: kafka-python's ``max_request_size`` default; the dead letters are fitted under it.
DEFAULT_MAX_REQUEST_BYTES = 1_048_576


def default_max_in_flight(max_batch_size: int, pipeline_depth: int = 1) -> int:
    """Room for one micro-batch being built, ``pipeline_depth`` (at least one) being
    classified and three awaiting acknowledgement: four batches without pipelining."""
    return (3 + max(1, pipeline_depth)) * max_batch_size


@dataclass(frozen=True)
class WorkerState:
    """What the loop last saw, for other threads (HTTP) to read without touching Kafka."""

    assigned: int = 0
    in_flight: int = 0
    paused: bool = False
    last_step_at: float | None = None
    oldest_unacked_at: float | None = None
    """Monotonic time the oldest batch still awaiting Kafka's acknowledgement was produced."""


class Worker:
    def __init__(
        self,
        source: Source,
        sink: Sink,
        classifier: Classifier,
        metrics: WorkerMetrics,
        *,
        policy: BatchPolicy,
        topics: Topics,
        input_format: InputFormat = "auto",
        fields: FieldMap | None = None,
        label_format: LabelFormat | None = None,
        max_record_bytes: int = 16_384,
        max_in_flight: int | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        model_info: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        guarantee: ProcessingGuarantee | None = None,
        model_slot: ModelSlot | None = None,
        shadow: Shadow | None = None,
        pipeline_depth: int = 1,
        runner: Runner | None = None,
    ) -> None:
        """``pipeline_depth``: batches that may be between the batcher and the publisher
        (0 or 1: none pipelined, inference on the loop's thread); above 1 they are inferred
        by ``runner`` (default: a thread of the worker's own, ended by :meth:`drain`)."""
        self.source = source
        self.sink = sink
        self.metrics = metrics
        self.clock: Clock = clock or SystemClock()
        self.stopping = False
        self.state = WorkerState()
        self.batcher = MicroBatcher(policy)
        self.drift = DriftSignals(metrics.drift, "primary")
        self.drift.use_model(
            (model_info or {}).get("version", ""),
            model_slot.current.drift_reference if model_slot is not None else None,
        )
        self.classify = Classify(
            classifier,
            metrics,
            input_format=input_format,
            fields=fields,
            max_record_bytes=max_record_bytes,
            drift=self.drift,
        )
        self.publisher = Publisher(
            sink,
            topics,
            label_format=label_format,
            model_info=model_info or {},
            max_request_bytes=max_request_bytes,
            on_labeled=self._on_labeled,
            on_dead_lettered=self._on_dead_lettered,
        )
        self.guarantee: ProcessingGuarantee = guarantee or AtLeastOnce(
            source, sink, metrics, self.clock, commit_interval_s=policy.commit_interval_s
        )
        self._own_runner: ThreadRunner | None = None
        self.stage = self._inference_stage(pipeline_depth, runner)
        self.flow = FlowControl.for_limit(
            max_in_flight or default_max_in_flight(policy.max_batch_size, pipeline_depth)
        )
        self.paused = False
        self._drained = False
        """The last poll brought fewer records than asked: the consumer had no more."""
        self._lag_partitions: set[TopicPartition] = set()
        self._last_consumed_ms: dict[TopicPartition, int] = {}
        """Per partition: the timestamp of the last record consumed (for the lag in seconds)."""
        self._lag_seconds_partitions: set[TopicPartition] = set()
        self._rebalances_seen = 0
        metrics.max_batch_size.set(policy.max_batch_size)
        self._labeled_counters = {
            label: metrics.labeled.labels(label=label) for label in classifier.labels
        }
        """The labelled counter of each label, looked up once (on Kafka's callback thread)."""
        self.model_slot = model_slot
        self.shadow = shadow

    def _inference_stage(self, depth: int, runner: Runner | None) -> InferenceStage:
        """Inline at depth 0 or 1; else on ``runner``, or on a thread of the worker's own."""
        if depth > 1 and not self.guarantee.pipelinable:
            raise ValueError(
                f"{type(self.guarantee).__name__} cannot run pipelined (depth {depth}); run it "
                "at depth 1"
            )
        if depth <= 1:
            runner = InlineRunner()
        elif runner is None:
            runner = self._own_runner = ThreadRunner("inference")
        return InferenceStage(self.classify, runner, max(1, depth))

    @property
    def in_flight(self) -> int:
        return len(self.batcher) + self.stage.records + self.guarantee.in_flight

    # -- the loop -------------------------------------------------------------------------

    def run(self, drain_timeout_s: float = 20.0) -> ShutdownReport:
        """``step()`` until :meth:`stop`, then :meth:`drain`."""
        while not self.stopping:
            self.step()
        return self.drain(drain_timeout_s)

    def stop(self) -> None:
        """Ask the loop to stop after the current step (safe from a signal handler)."""
        self.stopping = True

    def step(self) -> None:
        now = self.clock.monotonic()
        if self.model_slot is not None:  # between two micro-batches: a new model may go in
            swapped = self.model_slot.poll(now)
            if swapped is not None:
                self.use_model(swapped)
        if self.paused:
            self.source.pause(self.source.assignment())  # newly assigned ones too
        if self._drained and len(self.stage):
            # The consumer had nothing more: wait for the model rather than in an idle poll,
            # so a finished batch never sits behind one. (Waiting here rather than cutting the
            # poll's timeout to 0 also keeps zero-timeout polls rare: kafka-python 3.0.12 can
            # lose a group join polled that way, see internals.finish_lost_join.)
            self._finish_pending(Deadline(now + self.batcher.wait_s(now), self.clock))
            now = self.clock.monotonic()
            if self.batcher.ready(now, model_busy=self.stage.busy):
                # Due, or held open while the model was busy and it is free now: it goes
                # before the next poll rather than after it.
                self._submit(self.batcher.take())
        room = min(self.batcher.room, self.flow.room(self.in_flight))
        # kafka-python wants max_records >= 1; with no room every partition is paused.
        asked = max(1, room)
        polled = self.source.poll(self.batcher.wait_s(now), asked)
        got = 0
        for tp, records in polled.items():
            self.batcher.add(records, self.clock.monotonic())
            got += len(records)
            if records and records[-1].timestamp >= 0:
                self._last_consumed_ms[tp] = records[-1].timestamp
        self.batcher.polled(asked)  # fewer than asked: drained, an adaptive batch closes
        self._drained = got < asked
        now = self.clock.monotonic()
        if self.batcher.ready(now, model_busy=self.stage.busy):
            self._submit(self.batcher.take())
        self._publish_finished()
        self.guarantee.poll(now)
        self._flow()
        assigned = self._observe_lag()
        self.metrics.in_flight.set(self.in_flight)
        self.metrics.last_progress.set(self.clock.time())
        oldest = self.guarantee.oldest_unacked_at
        self.metrics.oldest_unacked.set(0.0 if oldest is None else max(0.0, now - oldest))
        self.state = WorkerState(assigned, self.in_flight, self.paused, now, oldest)

    def drain(self, timeout_s: float = 20.0) -> ShutdownReport:
        """Finish the batch in hand and the batches with the model, publish them, wait for
        deliveries, commit; all within ``timeout_s``. Records the model did not finish in
        time are reported undelivered (not committed: a restart redoes them)."""
        deadline = Deadline.after(timeout_s, self.clock)
        while self.stage.full and self.stage.wait(deadline.left()):
            self._publish_finished()
        if len(self.batcher) and not self.stage.full:
            self._submit(self.batcher.take())
        self._finish_pending(deadline)
        report = self.guarantee.close(deadline)
        self.close()
        unfinished = len(self.batcher) + self.stage.records
        if not unfinished:
            return report
        detail = f"{unfinished} record(s) still with the model when the shutdown timeout passed"
        return ShutdownReport(
            report.undelivered + unfinished,
            report.committed,
            "; ".join(d for d in (report.detail, detail) if d),
        )

    def close(self) -> None:
        """End the inference thread the worker started, if any (a running inference finishes
        on its own; nothing waits for it). :meth:`drain` ends with it; after a fatal error
        the process exits, and the thread with it."""
        if self._own_runner is not None:
            self._own_runner.close()

    def use_model(self, model: ServedModel) -> None:
        """Classify with ``model`` from the next micro-batch on; its outputs name it."""
        self.classify.classifier = model.classifier
        self.publisher.model_info = dict(model.info)
        self.drift.use_model(model.info.get("version", ""), model.drift_reference)
        for label in model.classifier.labels:
            self.metrics.labeled.labels(label=label)

    # -- stages ---------------------------------------------------------------------------

    def _submit(self, records: list[InputRecord]) -> None:
        """Decode and encode a closed batch, then hand it to the model; when the stage is
        full, the oldest batch there is waited for and published first."""
        for topic, count in Counter(r.topic for r in records).items():
            self.metrics.consumed.labels(topic=topic).inc(count)
        batch = self.classify.prepare(records)
        while self.stage.full:
            if not self.stage.wait(None):
                raise RuntimeError("the inference runner gave up waiting for a batch")
            self._publish_finished()
        self.stage.submit(batch, self.publisher.model_info)

    def _publish_finished(self) -> None:
        """Publish the batches back from the model, in the order they were polled."""
        while (finished := self.stage.take()) is not None:
            self._publish(finished)

    def _publish(self, finished: Finished) -> None:
        records, verdicts, info = finished.batch.records, finished.verdicts, finished.model_info
        deliveries = self.publisher.publish(records, verdicts, self.clock.time() * 1000, info)
        if self.shadow is not None:  # never blocks: a shadow that is behind drops and counts
            self.shadow.offer(records, verdicts, info)
        offsets = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}
        self.guarantee.track(offsets, deliveries)

    def _finish_pending(self, deadline: Deadline) -> None:
        """Wait for the batches with the model, publishing each as it is back, until none is
        left or ``deadline`` passes."""
        while len(self.stage) and self.stage.wait(deadline.left()):
            self._publish_finished()

    def _flow(self) -> None:
        decision = self.flow.decide(self.in_flight, self.paused)
        if decision is FlowDecision.PAUSE:
            self.source.pause(self.source.assignment())
            self.paused = True
            log.info(
                "%d records in flight: pausing fetches until they are acknowledged", self.in_flight
            )
        elif decision is FlowDecision.RESUME:
            self.source.resume(self.source.assignment())
            self.paused = False
            log.info("%d records in flight: resuming fetches", self.in_flight)
        self.metrics.paused.set(1 if self.paused else 0)

    def _observe_lag(self) -> int:
        lag = self.source.lag()
        wall = self.clock.time()
        for tp, value in lag.items():
            series = (tp.topic, str(tp.partition))
            self.metrics.consumer_lag.labels(*series).set(value)
            last = self._last_consumed_ms.get(tp)
            if value == 0 or last is not None:  # unknown until a record of it was read
                behind = 0.0 if value == 0 or last is None else max(0.0, wall - last / 1000)
                self.metrics.consumer_lag_seconds.labels(*series).set(behind)
                self._lag_seconds_partitions.add(tp)
        for tp in self._lag_partitions - set(lag):  # revoked: its series go
            self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
            if tp in self._lag_seconds_partitions:
                self.metrics.consumer_lag_seconds.remove(tp.topic, str(tp.partition))
                self._lag_seconds_partitions.discard(tp)
            self._last_consumed_ms.pop(tp, None)  # assigned again, it starts afresh
        self._lag_partitions = set(lag)
        rebalances = self.source.rebalances()
        if rebalances > self._rebalances_seen:
            self.metrics.rebalances.inc(rebalances - self._rebalances_seen)
            self._rebalances_seen = rebalances
            partitions = self.source.input_partitions()
            if partitions is not None:
                self.metrics.input_partitions.set(partitions)
        assigned = len(self.source.assignment())
        self.metrics.assigned_partitions.set(assigned)
        return assigned

    # Called on the producer's thread when Kafka acknowledges; prometheus_client is thread-safe.
    def _on_labeled(self, label: str, timestamp_ms: int, *_: object) -> None:
        counter = self._labeled_counters.get(label)
        if counter is None:  # a label of a model swapped in; dict writes are atomic
            counter = self._labeled_counters[label] = self.metrics.labeled.labels(label=label)
        counter.inc()
        if timestamp_ms >= 0:
            latency = self.clock.time() - timestamp_ms / 1000
            self.metrics.event_to_label_seconds.observe(max(0.0, latency))

    def _on_dead_lettered(self, reason: str, *_: object) -> None:
        self.metrics.dead_lettered.labels(reason=reason).inc()
