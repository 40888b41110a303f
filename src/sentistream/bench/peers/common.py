"""What both peers share: their command line, the model one tweet at a time, the label.

Only the standard library and :mod:`sentistream.inference` (numpy, ONNX Runtime, tokenizers,
pydantic) are imported, so a peer runs from a virtualenv that has its own Kafka library and
not the project's.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentistream.inference import SentimentModel

__all__ = ["READY", "PeerArgs", "PerRecordModel", "announce_ready", "label_value", "parse_args"]

READY = "ready"
"""The line a peer prints on stdout once its model is loaded and its clients are made."""


@dataclass(frozen=True)
class PeerArgs:
    bootstrap: str
    input: str
    output: str
    model_dir: Path
    group: str
    count: int
    """Exit after labelling this many tweets (0: run until stopped)."""
    threads: int


def parse_args(description: str, argv: Sequence[str] | None = None) -> PeerArgs:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--input", required=True, help="topic of tweets ({id, text} JSON)")
    parser.add_argument("--output", required=True, help="topic for the labels (JSON)")
    parser.add_argument("--model-dir", required=True, type=Path, help="model folder")
    parser.add_argument("--group", default="sentistream-peer", help="consumer group")
    parser.add_argument("--count", type=int, default=0, help="exit after this many labels")
    parser.add_argument(
        "--threads", type=int, default=1, help="ONNX Runtime threads (the worker's default: 1)"
    )
    args = parser.parse_args(argv)
    return PeerArgs(
        bootstrap=args.bootstrap,
        input=args.input,
        output=args.output,
        model_dir=args.model_dir,
        group=args.group,
        count=args.count,
        threads=args.threads,
    )


def announce_ready(library: str) -> None:
    """Tell the benchmark the peer is about to consume, and with which library."""
    print(f"{READY} {library}", flush=True)


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def label_value(
    tweet: Mapping[str, Any],
    label: str,
    probabilities: Mapping[str, float],
    model: Mapping[str, str],
    event_ms: int | None,
    now_ms: float,
) -> dict[str, Any]:
    """The label of one tweet, with the fields of the worker's ``json`` format that a user
    would keep: id, text, label, probabilities, model, event_time (the input record's
    timestamp) and labeled_at."""
    return {
        "id": tweet.get("id"),
        "text": tweet.get("text"),
        "label": label,
        "probabilities": {name: round(p, 6) for name, p in probabilities.items()},
        "model": dict(model),
        "event_time": None if event_ms is None or event_ms < 0 else _iso(event_ms),
        "labeled_at": _iso(now_ms),
    }


class PerRecordModel:
    """The served model, one tweet a call: the tokenizer's ``encode``, then ONNX Runtime on a
    batch of one (what a user without a micro-batching loop writes)."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        from sentistream.inference import SentimentModel

        self.model: SentimentModel = SentimentModel.load(folder.resolve(), threads=threads)
        self.info = {
            "name": self.model.manifest.name,
            "version": self.model.manifest.version,
            "sha256": self.model.sha256,
        }

    def classify(self, text: str) -> tuple[str, dict[str, float]]:
        ids = self.model.encode(text)
        prediction = self.model.to_prediction(self.model.predict_ids([ids])[0])
        return prediction.label, prediction.probabilities

    def label(
        self, tweet: Mapping[str, Any], event_ms: int | None, now_ms: float
    ) -> dict[str, Any]:
        label, probabilities = self.classify(str(tweet.get("text", "")))
        return label_value(tweet, label, probabilities, self.info, event_ms, now_ms)
