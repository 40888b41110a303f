"""Reading labelled tweets in Sentiment140's CSV layout, whatever their encoding.

No header, six quoted columns (target, id, date, query, user, text); target 0 is negative,
2 neutral, 4 positive. The Sentiment140 corpus is latin-1; other sources in the same layout
(the SemEval set in ``../shared/data``) are UTF-8, with emoji. :func:`load_labelled` reads a
file as UTF-8 when its bytes are valid UTF-8 and as latin-1 otherwise (or as told), drops a
byte-order mark, and keeps every row with its class name; :meth:`LabelledTweets.restricted`
keeps the classes a model has. A file in any other layout is refused with the line and the
problem, rather than half-read.

The standard library's ``csv`` reader does the parsing: it knows the line each record ends on
and keeps short rows short, which pandas' fast reader fills in silently.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple

from sentistream.manifest import sha256_file

__all__ = [
    "COLUMNS",
    "LABELS",
    "TARGETS",
    "DatasetError",
    "Encoding",
    "LabelledTweets",
    "Row",
    "decode_file",
    "iter_sentiment140",
    "load_labelled",
]

COLUMNS = ("target", "id", "date", "query", "user", "text")
#: Every class name, in the order models list them.
LABELS = ("negative", "neutral", "positive")
#: Sentiment140's target value for each class.
TARGETS = {"0": "negative", "2": "neutral", "4": "positive"}

Encoding = Literal["auto", "utf-8", "latin-1"]
_BOM = b"\xef\xbb\xbf"


class DatasetError(ValueError):
    """The file is not in Sentiment140's layout; the message names the line."""


@dataclass(frozen=True)
class LabelledTweets:
    """One file's rows: text, class name and the file's ``query`` column (a sub-source)."""

    path: Path
    texts: list[str]
    labels: list[str]
    queries: list[str]
    encoding: str
    sha256: str
    dropped: dict[str, int]
    """Rows left out by :meth:`restricted`, per class name."""

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {name: counts[name] for name in LABELS if counts[name]}

    def restricted(self, classes: Sequence[str]) -> LabelledTweets:
        """Only the rows whose class is in ``classes`` (a two-class model drops neutral)."""
        keep = [index for index, label in enumerate(self.labels) if label in classes]
        dropped = Counter(label for label in self.labels if label not in classes)
        if not keep:
            raise DatasetError(
                f"{self.path}: no rows of the classes {', '.join(classes)} "
                f"(the file has {self.counts() or 'no rows'})"
            )
        return replace(
            self,
            texts=[self.texts[i] for i in keep],
            labels=[self.labels[i] for i in keep],
            queries=[self.queries[i] for i in keep],
            dropped={**self.dropped, **dropped},
        )


class Row(NamedTuple):
    line: int
    target: str
    id: str
    text: str
    query: str = ""


def decode_file(path: Path, encoding: Encoding = "auto") -> tuple[str, str]:
    """The file's text and the encoding it was read with; a UTF-8 byte-order mark is dropped.

    ``auto`` reads UTF-8 when every byte sequence is valid UTF-8 (emoji and non-Latin text
    intact), else latin-1, which decodes any byte (Sentiment140 as distributed).
    """
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    raw = path.read_bytes().removeprefix(_BOM)
    if encoding == "latin-1":
        return raw.decode("latin-1"), "latin-1"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if encoding == "utf-8":
            line = raw[: exc.start].count(b"\n") + 1
            raise DatasetError(
                f"{path}:{line}: not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                "read it with --encoding latin-1 or auto"
            ) from exc
        return raw.decode("latin-1"), "latin-1"


def _rows(path: Path, text: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            line = reader.line_num
            if len(row) != len(COLUMNS):
                raise DatasetError(
                    f"{path}:{line}: expected {len(COLUMNS)} columns "
                    f"({', '.join(COLUMNS)}), found {len(row)}"
                )
            target = row[0].strip()
            if target not in TARGETS:
                hint = " (Sentiment140 files have no header row)" if line == 1 else ""
                raise DatasetError(f"{path}:{line}: target {row[0]!r} is not 0, 2 or 4{hint}")
            yield Row(line, target, row[1], row[5], row[3])
    except csv.Error as exc:
        raise DatasetError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from exc


def iter_sentiment140(path: Path, encoding: Encoding = "auto") -> Iterator[Row]:
    """Yield every row with its line number, validating the layout as it goes."""
    text, _ = decode_file(path, encoding)
    yield from _rows(path, text)


def load_labelled(path: Path, encoding: Encoding = "auto") -> LabelledTweets:
    """Read a whole Sentiment140-layout file, every class kept."""
    text, used = decode_file(path, encoding)
    rows = list(_rows(path, text))
    if not rows:
        raise DatasetError(f"{path}: no rows (the file is empty)")
    return LabelledTweets(
        path=path,
        texts=[row.text for row in rows],
        labels=[TARGETS[row.target] for row in rows],
        queries=[row.query for row in rows],
        encoding=used,
        sha256=sha256_file(path),
        dropped={},
    )
