"""Reading and formatting labelled results for people (``sentistream tail``).

The consumer is the kafka-python backend's
(:mod:`sentistream.worker.backends.kafka_python.tools`): no consumer group (it commits nothing
and shares no partitions), pointed at the output topic's end (or start) as of that moment.
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
    "poll_values",
    "quantile",
]


def _row(label: str, probability: str, source: str, text: str) -> str:
    return f"{label:<8} {probability:>5}  {source:<10} {text}"


HEADER = _row("label", "prob", "source", "text")
LEGEND = (
    "prob: the label's probability; source p2@0: the tweet was offset 0 of partition 2 "
    "of the input topic"
)


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
