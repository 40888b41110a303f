"""The worker's loop: poll → micro-batch → classify → publish → commit what was delivered.

This module knows no Kafka client, no ONNX Runtime and no HTTP: it talks to a :class:`Source`,
a :class:`Sink` and a :class:`Classifier`, and reads time from a :class:`Clock`, so tests drive
:meth:`Worker.step` with in-memory fakes and a fake clock, and never sleep.

Delivery guarantee (at-least-once): a batch's offsets are committed only once every label and
dead letter produced from it has been acknowledged by Kafka, and only in order (a batch is never
committed past an earlier one still in flight). A crash at any moment repeats work; it never
skips it. Error kinds:

* a record that can never be classified → dead-letter topic, counted, committed past;
* a commit refused because a rebalance moved the partition → counted, the new owner redoes it;
* a delivery that fails after the producer's own retries, or anything unexpected → the
  exception propagates, the worker exits non-zero, and its supervisor restarts it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from sentistream.worker.messages import (
    InputFormat,
    InputRecord,
    InvalidMessage,
    Tweet,
    dead_letter_headers,
    decode,
    encode_label,
)
from sentistream.worker.metrics import WorkerMetrics

__all__ = [
    "BatchPolicy",
    "Classifier",
    "Clock",
    "CommitDeferred",
    "CommitRefused",
    "Delivery",
    "DeliveryFailed",
    "InferenceError",
    "ModelBroken",
    "Sink",
    "Source",
    "SystemClock",
    "TopicPartition",
    "Topics",
    "Worker",
]

log = logging.getLogger(__name__)

#: Batches in a row whose every record failed inference before the model is declared broken.
MAX_FAILED_BATCHES = 20


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def time(self) -> float: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class Delivery(Protocol):
    """A produced record's acknowledgement (kafka-python's FutureRecordMetadata has it)."""

    @property
    def is_done(self) -> bool: ...
    @property
    def exception(self) -> BaseException | None: ...
    def failed(self) -> bool: ...
    def add_callback(self, fn: Callable[..., object], *args: object) -> object: ...


class CommitRefused(Exception):  # noqa: N818 - it is an outcome, not a bug
    """The group moved on (rebalance); the offsets were not committed."""


class CommitDeferred(Exception):  # noqa: N818
    """Kafka could not take the commit now (broker or coordinator unreachable); retry later."""


class Source(Protocol):
    def poll(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]: ...
    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` (next offset to read).

        Raises :class:`CommitRefused` when a rebalance moved the partitions away, and
        :class:`CommitDeferred` when Kafka is unreachable for now.
        """

    def assignment(self) -> set[TopicPartition]: ...
    def lag(self) -> Mapping[TopicPartition, int]: ...
    def close(self) -> None: ...


class Sink(Protocol):
    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition_hint: int | None,
    ) -> Delivery:
        """Produce asynchronously; ``partition_hint`` is the input partition (order keeper)."""

    def flush(self, timeout_s: float) -> None: ...


class InferenceError(Exception):
    """The classifier failed on the records it was given."""


class ModelBroken(Exception):  # noqa: N818
    """Every record of a batch failed inference on its own: the model, not the data, is bad."""


class DeliveryFailed(Exception):  # noqa: N818
    """Kafka did not acknowledge a produced record after the producer's retries."""


class Classifier(Protocol):
    labels: tuple[str, ...]

    def encode(self, text: str) -> list[int]: ...
    def predict_ids(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        """Probabilities per row; raises :class:`InferenceError` on failure."""


@dataclass(frozen=True)
class BatchPolicy:
    """A micro-batch closes at ``max_batch_size`` records or ``max_wait_s`` after its first."""

    max_batch_size: int
    max_wait_s: float
    poll_timeout_s: float = 0.1
    """How long an idle poll waits; also bounds how fast a stop request is noticed."""
    commit_interval_s: float = 0.5
    """Delivered offsets are committed at most this often (and always at shutdown)."""


@dataclass(frozen=True)
class Topics:
    output: str
    dead_letter: str


@dataclass
class _Pending:
    """A batch whose records were produced but not all acknowledged yet."""

    offsets: dict[TopicPartition, int]
    deliveries: list[Delivery]

    def done(self) -> bool:
        return all(d.is_done for d in self.deliveries)

    def failure(self) -> BaseException | None:
        for d in self.deliveries:
            if d.failed():
                return d.exception or DeliveryFailed("delivery failed")
        return None


@dataclass
class _Batch:
    records: list[InputRecord] = field(default_factory=list)
    opened_at: float = 0.0


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
        max_record_bytes: int = 16_384,
        model_info: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.source = source
        self.sink = sink
        self.classifier = classifier
        self.metrics = metrics
        self.policy = policy
        self.topics = topics
        self.input_format: InputFormat = input_format
        self.max_record_bytes = max_record_bytes
        self.model_info = dict(model_info or {})
        self.clock: Clock = clock or SystemClock()
        self.stopping = False
        self.last_step_at: float | None = None
        self._batch = _Batch()
        self._pending: deque[_Pending] = deque()
        self._committable: dict[TopicPartition, int] = {}
        self._last_commit_at = self.clock.monotonic()
        self._lag_partitions: set[TopicPartition] = set()
        self._failed_batches = 0

    # -- the loop -------------------------------------------------------------------------

    def run(self, drain_timeout_s: float = 20.0) -> bool:
        """``step()`` until :meth:`stop`, then :meth:`drain`; True if all was delivered."""
        while not self.stopping:
            self.step()
        return self.drain(drain_timeout_s)

    def stop(self) -> None:
        """Ask the loop to stop after the current step (safe from a signal handler)."""
        self.stopping = True

    def step(self) -> None:
        now = self.clock.monotonic()
        room = self.policy.max_batch_size - len(self._batch.records)
        if self._batch.records:
            wait = max(0.0, self._batch.opened_at + self.policy.max_wait_s - now)
        else:
            wait = self.policy.poll_timeout_s
        for records in self.source.poll(int(wait * 1000), room).values():
            if not self._batch.records and records:
                self._batch.opened_at = self.clock.monotonic()
            self._batch.records.extend(records)
        now = self.clock.monotonic()
        if self._batch.records and (
            len(self._batch.records) >= self.policy.max_batch_size
            or now >= self._batch.opened_at + self.policy.max_wait_s
        ):
            self._process(self._batch.records)
            self._batch = _Batch()
        self._collect_delivered()
        if self._committable and now - self._last_commit_at >= self.policy.commit_interval_s:
            self._commit()
        self._observe_lag()
        self.last_step_at = now
        self.metrics.last_progress.set(self.clock.time())

    def drain(self, timeout_s: float = 20.0) -> bool:
        """Finish the batch in hand, wait for its deliveries, commit; True if all delivered."""
        if self._batch.records:
            self._process(self._batch.records)
            self._batch = _Batch()
        self.sink.flush(timeout_s)
        self._collect_delivered()
        self._commit()
        return not self._pending

    # -- one batch ------------------------------------------------------------------------

    def _process(self, records: Sequence[InputRecord]) -> None:
        for topic, count in Counter(r.topic for r in records).items():
            self.metrics.consumed.labels(topic=topic).inc(count)
        tweets: list[Tweet | InvalidMessage] = []
        for record in records:
            try:
                tweets.append(decode(record.value, self.input_format, self.max_record_bytes))
            except InvalidMessage as error:
                tweets.append(error)
        good = [i for i, t in enumerate(tweets) if isinstance(t, Tweet)]
        ids = [self.classifier.encode(tweets[i].text) for i in good]  # type: ignore[union-attr]
        results = self._infer(ids)
        probabilities: dict[int, list[float]] = {}
        for index, result in zip(good, results, strict=True):
            if isinstance(result, InvalidMessage):
                tweets[index] = result
            else:
                probabilities[index] = result

        deliveries: list[Delivery] = []
        offsets: dict[TopicPartition, int] = {}
        now_ms = self.clock.time() * 1000
        for index, record in enumerate(records):
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
            item = tweets[index]
            if isinstance(item, InvalidMessage):
                deliveries.append(self._dead_letter(record, item))
            else:
                deliveries.append(self._publish(record, item, probabilities[index], now_ms))
        self._pending.append(_Pending(offsets, deliveries))

    def _infer(self, ids: list[list[int]]) -> list[list[float] | InvalidMessage]:
        """Classify ``ids`` in one call; if that fails, split to isolate the records at fault.

        Raises :class:`ModelBroken` when the model, not the data, looks at fault: every record
        of a batch failed on its own, or :data:`MAX_FAILED_BATCHES` batches in a row failed
        (which catches a broken model under traffic light enough for batches of one).
        """
        results = self._infer_split(ids)
        failed = sum(isinstance(r, InvalidMessage) for r in results)
        if ids and failed == len(ids):
            self._failed_batches += 1
            if len(ids) > 1 or self._failed_batches >= MAX_FAILED_BATCHES:
                raise ModelBroken(
                    f"inference failed for every record of {self._failed_batches} batch(es) "
                    f"in a row, the last of {len(ids)} record(s)"
                )
        elif ids:
            self._failed_batches = 0
        return results

    def _infer_split(self, ids: list[list[int]]) -> list[list[float] | InvalidMessage]:
        if not ids:
            return []
        started = time.perf_counter()
        try:
            probabilities = self.classifier.predict_ids(ids)
        except InferenceError as exc:
            if len(ids) == 1:
                return [InvalidMessage("inference_error", f"inference failed: {exc}")]
            middle = len(ids) // 2
            return self._infer_split(ids[:middle]) + self._infer_split(ids[middle:])
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(ids))
        rows: list[list[float]] = probabilities.tolist()
        return list(rows)

    def _publish(
        self,
        record: InputRecord,
        tweet: Tweet,
        probabilities: list[float],
        now_ms: float,
    ) -> Delivery:
        labels = self.classifier.labels
        label = labels[max(range(len(probabilities)), key=probabilities.__getitem__)]
        value = encode_label(
            record,
            tweet,
            label,
            dict(zip(labels, probabilities, strict=True)),
            self.model_info,
            now_ms,
        )
        delivery = self.sink.send(
            self.topics.output, record.key, value, list(record.headers), record.partition
        )
        delivery.add_callback(self._on_labeled, label, record.timestamp)
        return delivery

    def _dead_letter(self, record: InputRecord, error: InvalidMessage) -> Delivery:
        delivery = self.sink.send(
            self.topics.dead_letter,
            record.key,
            record.value,
            dead_letter_headers(record, error),
            None,
        )
        delivery.add_callback(self._on_dead_lettered, error.reason)
        return delivery

    # Called on the producer's thread when Kafka acknowledges; prometheus_client is thread-safe.
    def _on_labeled(self, label: str, timestamp_ms: int, *_: object) -> None:
        self.metrics.labeled.labels(label=label).inc()
        if timestamp_ms >= 0:
            latency = self.clock.time() - timestamp_ms / 1000
            self.metrics.event_to_label_seconds.observe(max(0.0, latency))

    def _on_dead_lettered(self, reason: str, *_: object) -> None:
        self.metrics.dead_lettered.labels(reason=reason).inc()

    # -- commits --------------------------------------------------------------------------

    def _collect_delivered(self) -> None:
        """Move the offsets of fully acknowledged batches, oldest first, to the commit set."""
        while self._pending and self._pending[0].done():
            batch = self._pending.popleft()
            failure = batch.failure()
            if failure is not None:
                raise DeliveryFailed(f"Kafka did not acknowledge a record: {failure}") from failure
            self._committable.update(batch.offsets)

    def _commit(self) -> None:
        self._last_commit_at = self.clock.monotonic()
        if not self._committable:
            return
        offsets, self._committable = self._committable, {}
        try:
            self.source.commit(offsets)
        except CommitRefused as exc:
            self.metrics.commit_failures.labels(reason="rebalance").inc()
            log.warning("offset commit refused, the partitions' new owner redoes them: %s", exc)
            return
        except CommitDeferred as exc:
            self.metrics.commit_failures.labels(reason="unavailable").inc()
            log.warning(
                "offset commit failed, retrying in %.1f s: %s", self.policy.commit_interval_s, exc
            )
            for tp, offset in offsets.items():  # later offsets, if any arrived, win
                self._committable.setdefault(tp, offset)
            return
        self.metrics.commits.inc()

    # -- lag ------------------------------------------------------------------------------

    def _observe_lag(self) -> None:
        lag = self.source.lag()
        for tp, value in lag.items():
            self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(value)
        for tp in self._lag_partitions - set(lag):
            self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self._lag_partitions = set(lag)
        self.metrics.assigned_partitions.set(len(self.source.assignment()))
