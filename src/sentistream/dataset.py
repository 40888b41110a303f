"""Reading Sentiment140 CSV files exactly as the corpus distributes them.

No header, six quoted columns (target, id, date, query, user, text), latin-1 bytes. Target 0 is
negative, 4 positive, 2 neutral (the training file has none; the test file has some): neutral
rows are dropped. A file in any other layout is refused with the line and the problem, rather
than half-read.

The standard library's ``csv`` reader does the parsing: it knows the line each record ends on
and keeps short rows short, which pandas' fast reader fills in silently.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sentistream.manifest import sha256_file

__all__ = [
    "COLUMNS",
    "LABELS",
    "DatasetError",
    "LabelledTweets",
    "Row",
    "iter_sentiment140",
    "load_sentiment140",
]

COLUMNS = ("target", "id", "date", "query", "user", "text")
#: Class names in the model's output order, and the corpus target each one comes from.
LABELS = ("negative", "positive")
_TARGET_TO_LABEL = {"0": 0, "4": 1}
_NEUTRAL = "2"


class DatasetError(ValueError):
    """The file is not in Sentiment140's layout; the message names the line."""


@dataclass(frozen=True)
class LabelledTweets:
    path: Path
    texts: list[str]
    labels: list[int]
    """Index into :data:`LABELS` for each text."""
    neutral_dropped: int
    sha256: str

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        return {name: self.labels.count(index) for index, name in enumerate(LABELS)}


class Row(NamedTuple):
    line: int
    target: str
    id: str
    text: str


def iter_sentiment140(path: Path) -> Iterator[Row]:
    """Yield every row with its line number, validating the layout as it goes."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    with path.open(encoding="latin-1", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            for row in reader:
                line = reader.line_num
                if len(row) != len(COLUMNS):
                    raise DatasetError(
                        f"{path}:{line}: expected {len(COLUMNS)} columns "
                        f"({', '.join(COLUMNS)}), found {len(row)}"
                    )
                target = row[0].strip()
                if target not in _TARGET_TO_LABEL and target != _NEUTRAL:
                    hint = " (Sentiment140 files have no header row)" if line == 1 else ""
                    raise DatasetError(f"{path}:{line}: target {row[0]!r} is not 0, 2 or 4{hint}")
                yield Row(line, target, row[1], row[5])
        except csv.Error as exc:
            raise DatasetError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from exc


def load_sentiment140(path: Path) -> LabelledTweets:
    """Read a whole Sentiment140-layout file, dropping neutral rows."""
    texts: list[str] = []
    labels: list[int] = []
    neutral = 0
    rows = iter_sentiment140(path)
    for _, target, _, text in rows:
        if target == _NEUTRAL:
            neutral += 1
            continue
        texts.append(text)
        labels.append(_TARGET_TO_LABEL[target])
    if not texts:
        raise DatasetError(f"{path}: no positive or negative rows (the file is empty or neutral)")
    return LabelledTweets(
        path=path,
        texts=texts,
        labels=labels,
        neutral_dropped=neutral,
        sha256=sha256_file(path),
    )
