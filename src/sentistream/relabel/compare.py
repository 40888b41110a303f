"""What the new model changed: the relabel's labels beside the original ones, matched by the
source coordinates every label carries (its input partition and offset), as a confusion
table (rows: original label, columns: new label). Pure: the values come from whoever read
the two topics.

Both label formats are read: the worker's JSON (``source.topic/partition/offset``, ``label``,
``model.sha256``) and connect-json (``payload.source_topic`` ...). A source record labelled
more than once in one topic (an at-least-once worker's redone batch) counts once, with its
last label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from sentistream.relabel.range import OffsetRange
from sentistream.worker.core.ports import TopicPartition

__all__ = ["Comparison", "LabelRef", "compare", "label_ref"]


class LabelRef(NamedTuple):
    """One label as the comparison sees it."""

    topic: str
    partition: int
    offset: int
    label: str
    model_sha256: str


def label_ref(value: bytes | None) -> LabelRef | None:
    """The source coordinates, label and model of a label value (None: not a label)."""
    if not value:
        return None
    try:
        doc: Any = orjson.loads(value)
        if isinstance(doc, dict) and isinstance(doc.get("payload"), dict) and "schema" in doc:
            p = doc["payload"]
            return LabelRef(
                str(p["source_topic"]),
                int(p["source_partition"]),
                int(p["source_offset"]),
                str(p["label"]),
                str(p.get("model_sha256", "")),
            )
        source = doc["source"]
        return LabelRef(
            str(source["topic"]),
            int(source["partition"]),
            int(source["offset"]),
            str(doc["label"]),
            str((doc.get("model") or {}).get("sha256", "")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


@dataclass
class Comparison:
    """Labels matched by source record: ``pairs[(original, new)]`` counts them."""

    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    new_only: int = 0
    """New labels whose source record has no original label (it was a dead letter, or the
    original topic does not reach back that far)."""
    original_only: int = 0
    """Original labels in the range without a new label (dead-lettered by the relabel)."""

    @property
    def matched(self) -> int:
        return sum(self.pairs.values())

    @property
    def differ(self) -> int:
        return sum(n for (old, new), n in self.pairs.items() if old != new)

    def labels(self) -> list[str]:
        names = {name for pair in self.pairs for name in pair}
        order = ("negative", "neutral", "positive")
        return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))

    def table(self) -> list[str]:
        """The confusion table: rows are the original labels, columns the new ones."""
        names = self.labels()
        corner = "original \\ new"
        width = max([len(corner), *(len(n) for n in names)])
        cells = max([8, *(len(n) for n in names), *(len(f"{v:,}") for v in self.pairs.values())])
        lines = [corner.ljust(width) + "".join(n.rjust(cells + 2) for n in names)]
        for old in names:
            row = "".join(f"{self.pairs.get((old, new), 0):,}".rjust(cells + 2) for new in names)
            lines.append(old.ljust(width) + row)
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "differ": self.differ,
            "new_only": self.new_only,
            "original_only": self.original_only,
            "table": {
                old: {new: self.pairs.get((old, new), 0) for new in self.labels()}
                for old in self.labels()
            },
        }


def _in_range(
    values: Iterable[bytes | None],
    ranges: Mapping[TopicPartition, OffsetRange],
    model_sha256: str | None,
) -> dict[tuple[int, int], str]:
    found: dict[tuple[int, int], str] = {}
    for value in values:
        ref = label_ref(value)
        if ref is None or (model_sha256 is not None and ref.model_sha256 != model_sha256):
            continue
        r = ranges.get(TopicPartition(ref.topic, ref.partition))
        if r is not None and r.start <= ref.offset < r.end:
            found[(ref.partition, ref.offset)] = ref.label
    return found


def compare(
    new: Iterable[bytes | None],
    original: Iterable[bytes | None],
    ranges: Mapping[TopicPartition, OffsetRange],
    model_sha256: str,
) -> Comparison:
    """Match the new labels (only those of ``model_sha256``: the output topic may hold other
    runs') with the original ones, over the source records of ``ranges``."""
    relabelled = _in_range(new, ranges, model_sha256)
    originals = _in_range(original, ranges, None)
    comparison = Comparison()
    for key, label in relabelled.items():
        old = originals.get(key)
        if old is None:
            comparison.new_only += 1
        else:
            comparison.pairs[(old, label)] += 1
    comparison.original_only = len(originals.keys() - relabelled.keys())
    return comparison
