"""Reading and formatting labelled results for people (``sentistream tail``).

:func:`open_consumer` is a kafka-python consumer without a consumer group (it commits
nothing and shares no partitions); :func:`read_from` points it at the output topic's end (or
start) as of that moment.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "HEADER",
    "LEGEND",
    "Summary",
    "follow",
    "format_label",
    "open_consumer",
    "poll_values",
    "quantile",
    "read_from",
]


def _row(label: str, probability: str, source: str, text: str) -> str:
    return f"{label:<8} {probability:>5}  {source:<10} {text}"


HEADER = _row("label", "prob", "source", "text")
LEGEND = (
    "prob: the label's probability; source p2@0: the tweet was offset 0 of partition 2 "
    "of the input topic"
)


def open_consumer(config: dict[str, Any], *, from_beginning: bool, isolation_level: str) -> Any:
    """kafka-python's consumer for ``tail``, from a client configuration
    (:meth:`~sentistream.connection.KafkaConnection.client_config`): no group, no commits,
    never creating a topic. :func:`read_from` gives it its topic."""
    from kafka import KafkaConsumer

    return KafkaConsumer(
        **config,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level=isolation_level,
        # Asking for a missing topic's metadata must not create it (on a broker with
        # auto.create.topics.enable, the default): tail says it is missing instead.
        allow_auto_create_topics=False,
    )


def read_from(consumer: Any, topic: str, *, from_beginning: bool, timeout_s: float) -> bool:
    """Point ``consumer`` at every partition of ``topic``, at its first record or at its end
    as of now (waiting up to ``timeout_s`` for the offsets), so that "labels written after
    tail starts" means after this call returned. False when the cluster has no such topic (or
    one these credentials may not describe). Partitions added later are not followed."""
    from kafka import TopicPartition

    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        return False
    assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
    consumer.assign(assigned)
    if from_beginning:
        consumer.seek_to_beginning(*assigned)
    else:
        consumer.seek_to_end(*assigned)
    for partition in assigned:
        consumer.position(partition, timeout_ms=int(timeout_s * 1000))
    return True


def poll_values(consumer: Any, timeout_ms: int = 500) -> list[bytes | None]:
    """The values of the records one poll returns (waiting up to ``timeout_ms``)."""
    batches = consumer.poll(timeout_ms=timeout_ms)
    return [record.value for records in batches.values() for record in records]


def format_label(value: bytes | None, width: int = 100) -> str:
    """One line per label: label, its probability, source partition@offset, the text."""
    if value is None:
        return "(null)"
    try:
        result = json.loads(value)
        label = result["label"]
        probability = result["probabilities"][label]
        source = result["source"]
        text = " ".join(str(result.get("text", "")).split())
    except (ValueError, KeyError, TypeError):
        return f"(not a sentistream label) {value[:width]!r}"
    if len(text) > width:
        text = text[: width - 1] + "…"
    return _row(
        str(label), f"{probability:.3f}", f"p{source['partition']}@{source['offset']}", text
    )


def follow(
    poll: Callable[[], Sequence[bytes | None]],
    emit: Callable[[bytes | None], None],
    *,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
    hint_after_s: float | None = None,
    hint: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Hand each polled value to ``emit`` until ``max_messages`` values, or until
    ``idle_timeout_s`` passes without one; call ``hint`` once if nothing at all arrived within
    ``hint_after_s``. ``poll`` waits a moment for values (an empty result is no error).
    Returns how many values were emitted."""
    started = last = clock()
    emitted = 0
    hinted = False
    while True:
        values = poll()
        now = clock()
        for value in values:
            emit(value)
            emitted += 1
            if max_messages is not None and emitted >= max_messages:
                return emitted
        if values:
            last = now
        elif idle_timeout_s is not None and now - last >= idle_timeout_s:
            return emitted
        if (
            not hinted
            and not emitted
            and hint_after_s is not None
            and now - started >= hint_after_s
        ):
            hint()
            hinted = True


class Summary:
    """Counts, label split, throughput and event→label latency of the labels seen."""

    def __init__(self) -> None:
        self.labels: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.first_event: datetime | None = None
        self.last_labeled: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.labels.values())

    def add(self, value: bytes | None) -> None:
        try:
            result = json.loads(value or b"")
            label = str(result["label"])
            labeled_at = datetime.fromisoformat(result["labeled_at"])
            event_time = result.get("event_time")
        except (ValueError, KeyError, TypeError):
            return
        self.labels[label] += 1
        self.last_labeled = max(filter(None, [self.last_labeled, labeled_at]))
        if event_time:
            event = datetime.fromisoformat(event_time)
            self.first_event = min(filter(None, [self.first_event, event]))
            self.latencies.append((labeled_at - event).total_seconds())

    def render(self) -> str:
        total = self.total
        if not total:
            return "no labels received"
        split = ", ".join(
            f"{name} {count} ({count / total:.0%})" for name, count in sorted(self.labels.items())
        )
        lines = [f"{total} labels: {split}"]
        if self.first_event and self.last_labeled:
            span = max((self.last_labeled - self.first_event).total_seconds(), 1e-3)
            lines.append(
                f"throughput: {total / span:.0f} tweets/s over {span:.1f} s "
                "(first event to last label)"
            )
        if self.latencies:
            p50, p95, p99 = (quantile(self.latencies, q) * 1000 for q in (0.5, 0.95, 0.99))
            lines.append(
                f"event→label latency: p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
                f"p99 {p99:.0f} ms (labeled_at - event_time)"
            )
        return "\n".join(lines)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
