"""The drift reference of a model folder: the figures the worker's drift signals are compared
with, measured on the model's own held-out tweets.

``make export`` runs this on the trainer's test splits and writes the result into the
manifest's ``drift`` section; the worker exports it beside its live figures
(:mod:`sentistream.worker.core.drift`). Run by hand::

    python -m sentistream.drift_reference --model-dir models/sentistream-lstm \
        --data runs/shipped/keras/test-*.csv --write

Never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sentistream.inference import SentimentModel
from sentistream.manifest import MANIFEST_FILE
from sentistream.worker.core.drift import OOV_ID, DriftReference

__all__ = ["measure", "write_into_manifest"]

BATCH = 512


def measure(model: SentimentModel, texts: Sequence[str]) -> DriftReference:
    """The drift figures of ``model`` on ``texts`` (its held-out tweets)."""
    if not texts:
        raise ValueError("the reference needs at least one tweet")
    tokens = oov = 0
    confidences: list[float] = []
    labels: Counter[str] = Counter()
    for start in range(0, len(texts), BATCH):
        ids = [model.encode(text) for text in texts[start : start + BATCH]]
        tokens += sum(len(row) for row in ids)
        oov += sum(row.count(OOV_ID) for row in ids)
        probabilities = model.predict_ids(ids, bucket_size=32)
        best = probabilities.argmax(axis=1)
        confidences.extend(probabilities.max(axis=1).tolist())
        labels.update(model.labels[int(i)] for i in best)
    return DriftReference(
        oov_token_ratio=round(oov / max(1, tokens), 6),
        label_share={name: round(labels[name] / len(texts), 6) for name in model.labels},
        confidence_p10=round(float(np.quantile(confidences, 0.1)), 6),
        mean_tokens=round(tokens / len(texts), 4),
        tweets=len(texts),
    )


def to_json(reference: DriftReference) -> dict[str, object]:
    return {
        "oov_token_ratio": reference.oov_token_ratio,
        "label_share": dict(reference.label_share),
        "confidence_p10": reference.confidence_p10,
        "mean_tokens": reference.mean_tokens,
        "tweets": reference.tweets,
    }


def write_into_manifest(folder: Path, reference: DriftReference) -> None:
    """Set the manifest's ``drift`` section (the rest of the manifest is left as it is)."""
    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["drift"] = to_json(reference)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="labelled CSVs")
    parser.add_argument("--write", action="store_true", help="write it into the manifest")
    args = parser.parse_args(argv)
    from sentistream.dataset import load_labelled

    texts = [text for path in args.data for text in load_labelled(path).texts]
    reference = measure(SentimentModel.load(args.model_dir), texts)
    print(json.dumps(to_json(reference), indent=2))
    if args.write:
        write_into_manifest(args.model_dir, reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
