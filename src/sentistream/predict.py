"""Classifying texts for people (``sentistream predict``): where the texts come from, the
worker's verdict on each, and the table or JSON lines they are printed as."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from sentistream.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from sentistream.inference import Prediction, SentimentModel

__all__ = ["PredictionTable", "chunks", "classify", "read_texts"]

T = TypeVar("T")


def read_texts(texts: Iterable[str], stdin: Iterable[str]) -> Iterator[str]:
    """``texts`` in order, each ``-`` replaced by the lines of ``stdin``."""
    for text in texts:
        if text == "-":
            yield from (line.removesuffix("\n") for line in stdin)
        else:
            yield text


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def classify(model: SentimentModel, texts: Sequence[str]) -> list[Prediction | str]:
    """Per text its prediction, or the reason the worker would dead-letter it (the worker's
    own check, so the two never disagree)."""
    from sentistream.worker.core.messages import InvalidMessage, decode

    limit = WorkerSettings.model_fields["max_record_bytes"].default
    verdicts: dict[int, Prediction | str] = {}
    valid: dict[int, str] = {}
    for n, text in enumerate(texts):
        try:
            valid[n] = decode(text.encode("utf-8", "surrogateescape"), "text", limit).text
        except InvalidMessage as exc:
            verdicts[n] = exc.reason
    if valid:  # ONNX Runtime is never handed an empty batch
        verdicts.update(zip(valid, model.predict(list(valid.values())), strict=True))
    return [verdicts[n] for n in range(len(texts))]


class PredictionTable:
    """`predict`'s output: a label column, one probability column per label of the model (in
    the manifest's order, however many there are), the text."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.label_width = max(len(name) for name in [*self.labels, "label", "empty_text"])

    def _line(self, label: str, cells: Sequence[str], text: str) -> str:
        columns = [
            f"{cell:>{max(len(name), 5)}}" for name, cell in zip(self.labels, cells, strict=True)
        ]
        return f"{label:<{self.label_width}}  {'  '.join(columns)}  {text}"

    def header(self) -> str:
        return self._line("label", self.labels, "text")

    def row(self, text: str, verdict: Prediction | str) -> str:
        if isinstance(verdict, str):
            return self._line(verdict, ["-"] * len(self.labels), text)
        cells = [f"{verdict.probabilities[name]:.3f}" for name in self.labels]
        return self._line(verdict.label, cells, text)

    @staticmethod
    def json(text: str, verdict: Prediction | str) -> str:
        if isinstance(verdict, str):
            return json.dumps({"text": text, "label": None, "reason": verdict})
        return json.dumps(
            {"text": text, "label": verdict.label, "probabilities": verdict.probabilities}
        )
