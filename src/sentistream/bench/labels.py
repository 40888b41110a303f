"""What the output topic says: labels counted by tweet id, and produce→label latencies. Pure.

The benchmark reads the output topic back with kcat as ``<timestamp>\\t<value>`` lines; the
output topic keeps the broker's append time (``message.timestamp.type=LogAppendTime``), so
``timestamp`` is when a label was stored, and the value's ``event_time`` is the input record's
timestamp (kcat's produce time). Every end-to-end figure comes from here, never from the
worker's own counters.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson

__all__ = ["Label", "LabelCount", "count_labels", "latencies_ms", "parse_labels"]


@dataclass(frozen=True)
class Label:
    id: str
    appended_ms: int
    event_ms: int | None


@dataclass(frozen=True)
class LabelCount:
    expected: int
    distinct: int
    duplicates: int
    first_ms: int
    last_ms: int

    @property
    def missing(self) -> int:
        return self.expected - self.distinct

    @property
    def span_s(self) -> float:
        return (self.last_ms - self.first_ms) / 1000

    @property
    def throughput_per_s(self) -> float:
        """Distinct labels over the time between the first and the last one stored."""
        return self.distinct / max(self.span_s, 1e-3)


def _millis(iso: str | None) -> int | None:
    if iso is None:
        return None
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def parse_labels(lines: Iterable[bytes]) -> list[Label]:
    """``<append ms>\\t<label JSON>`` lines (kcat ``-f '%T\\t%s\\n'``) → labels."""
    labels = []
    for line in lines:
        stamp, _, value = line.partition(b"\t")
        body = orjson.loads(value)
        labels.append(Label(str(body["id"]), int(stamp), _millis(body.get("event_time"))))
    return labels


def count_labels(labels: Iterable[Label], ids: Collection[str]) -> LabelCount:
    """The labels of the tweets ``ids`` (others ignored): distinct, duplicates, time span."""
    seen: set[str] = set()
    duplicates = 0
    first, last = None, None
    for label in labels:
        if label.id not in ids:
            continue
        if label.id in seen:
            duplicates += 1
            continue
        seen.add(label.id)
        first = label.appended_ms if first is None else min(first, label.appended_ms)
        last = label.appended_ms if last is None else max(last, label.appended_ms)
    return LabelCount(len(ids), len(seen), duplicates, first or 0, last or 0)


def latencies_ms(labels: Iterable[Label], ids: Collection[str]) -> list[float]:
    """Stored - produced, in ms, for the first label of each of ``ids``."""
    out: dict[str, float] = {}
    for label in labels:
        if label.id in ids and label.id not in out and label.event_ms is not None:
            out[label.id] = float(label.appended_ms - label.event_ms)
    return list(out.values())
