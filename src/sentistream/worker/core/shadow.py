"""A shadow model: a second model labels (a sample of) the same micro-batches, off the
primary's path, so an operator can judge a candidate on live traffic.

The loop hands each micro-batch's verdicts to :meth:`Shadow.offer`, which never blocks: the
labelled records picked by :func:`sampled` go into a bounded queue, and when the queue is full
(the shadow is behind) they are dropped and counted. A thread of its own
(:meth:`Shadow.start`) takes them out, encodes them with the shadow model's own vocabulary,
classifies them and sends one record per tweet to the shadow topic, with the primary's label
and model beside the shadow's. Those sends are fire and forget, outside the commit: a crash can
lose or repeat shadow records, never primary ones. Whatever the shadow model raises is counted
(``reason="failed"``) and its batch dropped; the primary never sees it.

``sentistream_shadow_agreement_ratio`` is the share of the last :data:`AGREEMENT_WINDOW`
compared tweets both models gave the same label (NaN before the first).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sentistream.worker.core.classify import Labelled, Verdict
from sentistream.worker.core.drift import DriftReference, DriftSignals
from sentistream.worker.core.messages import InputRecord
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.ports import Classifier, Outgoing, Sink
from sentistream.worker.core.publish import KeepInputOrder

__all__ = ["AGREEMENT_WINDOW", "MAX_PENDING_BATCHES", "Shadow", "ShadowItem", "sampled"]

log = logging.getLogger(__name__)

#: Tweets the agreement ratio is computed over (the most recent ones).
AGREEMENT_WINDOW = 1_000
#: Micro-batches waiting for the shadow at most; more are dropped (``reason="behind"``).
MAX_PENDING_BATCHES = 4


def sampled(record: InputRecord, fraction: float) -> bool:
    """Whether the shadow sees ``record``: a hash of its position, so the same records are
    picked on every run and by every worker, and ``fraction`` 1 picks all."""
    position = f"{record.topic}/{record.partition}/{record.offset}".encode()
    return zlib.crc32(position) < fraction * 2**32


@dataclass(frozen=True)
class ShadowItem:
    record: InputRecord
    primary: Labelled


@dataclass(frozen=True)
class _Batch:
    items: list[ShadowItem]
    primary_model: Mapping[str, str]


class Shadow:
    def __init__(
        self,
        classifier: Classifier,
        model_info: Mapping[str, str],
        sink: Sink,
        topic: str,
        metrics: WorkerMetrics,
        *,
        fraction: float = 1.0,
        max_pending_batches: int = MAX_PENDING_BATCHES,
        now_ms: Callable[[], float],
        drift_reference: DriftReference | None = None,
    ) -> None:
        self.classifier = classifier
        self.drift = DriftSignals(metrics.drift, "shadow")
        self.drift.use_model(str(model_info.get("version", "")), drift_reference)
        self.model_info = dict(model_info)
        self.sink = sink
        self.topic = topic
        self.order = KeepInputOrder(sink)
        self.metrics = metrics
        self.fraction = fraction
        self._now_ms = now_ms
        self._queue: queue.Queue[_Batch] = queue.Queue(maxsize=max_pending_batches)
        self._agreements: deque[bool] = deque(maxlen=AGREEMENT_WINDOW)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop's side: never blocks, never raises about the shadow ---------------------

    def offer(
        self,
        records: Sequence[InputRecord],
        verdicts: Sequence[Verdict],
        primary_model: Mapping[str, str],
    ) -> None:
        items = [
            ShadowItem(record, verdict)
            for record, verdict in zip(records, verdicts, strict=True)
            if isinstance(verdict, Labelled) and sampled(record, self.fraction)
        ]
        if not items:
            return
        try:
            self._queue.put_nowait(_Batch(items, dict(primary_model)))
        except queue.Full:
            self.metrics.shadow_dropped.labels(reason="behind").inc(len(items))

    # -- the shadow's thread ---------------------------------------------------------------

    def start(self) -> Shadow:
        self._thread = threading.Thread(target=self._run, name="shadow-model", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float) -> None:
        """Stop the thread (the batch in hand finishes); shadow work still queued is dropped."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, timeout_s))

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.run_once(timeout_s=0.2)

    def run_once(self, timeout_s: float | None = None) -> bool:
        """Label one queued batch (waiting up to ``timeout_s``; None: not at all). False when
        there was none."""
        try:
            batch = self._queue.get(timeout=timeout_s) if timeout_s else self._queue.get_nowait()
        except queue.Empty:
            return False
        try:
            self._label(batch)
        except Exception as exc:  # the shadow's failure is counted, never the primary's
            self.metrics.shadow_dropped.labels(reason="failed").inc(len(batch.items))
            log.warning("shadow model: a batch of %d dropped: %r", len(batch.items), exc)
        return True

    def _label(self, batch: _Batch) -> None:
        encoded = [(item, self.classifier.encode(item.primary.tweet.text)) for item in batch.items]
        rows = [(item, ids) for item, ids in encoded if ids]
        if not rows:
            return
        probabilities = self.classifier.predict_ids([ids for _, ids in rows]).tolist()
        labels = self.classifier.labels
        now_ms = self._now_ms()
        confidences: list[float] = []
        said: list[str] = []
        for (item, _), row in zip(rows, probabilities, strict=True):
            best = max(range(len(row)), key=row.__getitem__)
            label = labels[best]
            confidences.append(row[best])
            said.append(label)
            agree = label == item.primary.label
            self._agreements.append(agree)
            self.metrics.shadow_compared.labels(agree=str(agree).lower()).inc()
            value = _encode(
                item,
                label,
                dict(zip(labels, row, strict=True)),
                agree,
                batch,
                self.model_info,
                now_ms,
            )
            partition = self.order.partition(self.topic, item.record.partition)
            self.sink.send(Outgoing(self.topic, item.record.key, value, (), partition))
        self.metrics.shadow_agreement.set(sum(self._agreements) / len(self._agreements))
        self.drift.observe([ids for _, ids in rows], confidences, said)


def _encode(
    item: ShadowItem,
    label: str,
    probabilities: dict[str, float],
    agree: bool,
    batch: _Batch,
    model: Mapping[str, str],
    now_ms: float,
) -> bytes:
    record, primary = item.record, item.primary
    return json.dumps(
        {
            "id": primary.tweet.id,
            "text": primary.tweet.text,
            "label": label,
            "probabilities": {name: round(p, 6) for name, p in probabilities.items()},
            "model": dict(model),
            "primary": {"label": primary.label, "model": dict(batch.primary_model)},
            "agree": agree,
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
            "labeled_at": datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(
                timespec="milliseconds"
            ),
        },
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    ).encode("utf-8")
