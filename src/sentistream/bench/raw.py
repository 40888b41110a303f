"""Inference-only measurements: the ONNX Runtime ceiling and the unbatched baselines."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentistream.inference import SentimentModel
from sentistream.text import pad

__all__ = ["Throughput", "keras_one_at_a_time", "ort_ceiling", "ort_one_at_a_time", "sample"]


@dataclass(frozen=True)
class Throughput:
    name: str
    batch_size: int
    tweets: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.tweets / self.seconds


def _timed(run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def ort_ceiling(
    model: SentimentModel,
    ids: Sequence[list[int]],
    batch_sizes: Sequence[int],
    bucket_size: int = 0,
    repeats: int = 3,
) -> list[Throughput]:
    """Tweets/s of ``model.predict_ids`` over ``ids`` in consecutive batches (best of N)."""
    results = []
    name = (
        f"ONNX Runtime, length buckets of {bucket_size}"
        if bucket_size
        else "ONNX Runtime, one call per batch"
    )
    model.predict_ids(ids[: max(batch_sizes)])  # warm up
    for batch_size in batch_sizes:
        batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]

        def run(batches: list[Sequence[list[int]]] = batches) -> None:
            for batch in batches:
                model.predict_ids(batch, bucket_size=bucket_size)

        seconds = min(_timed(run) for _ in range(repeats))
        results.append(Throughput(name, batch_size, len(ids), seconds))
    return results


def ort_one_at_a_time(model: SentimentModel, ids: Sequence[list[int]]) -> Throughput:
    """The notebook's serving pattern on ONNX Runtime: one tweet per call, padded to maxlen."""
    maxlen, padding = model.text_config.maxlen, model.text_config.padding
    session, name, output = model._session, model.onnx.input_name, model.onnx.output_name
    rows = [pad([row], maxlen, padding) for row in ids]

    def run() -> None:
        for row in rows:
            session.run([output], {name: row})

    run()
    return Throughput("onnxruntime, one tweet per call, padded to maxlen", 1, len(ids), _timed(run))


def keras_one_at_a_time(keras_dir: Path, texts: Sequence[str]) -> Throughput:
    """What the notebook did: ``model.predict`` on one padded tweet at a time (needs TF)."""
    import keras

    from sentistream.manifest import load_verified

    manifest, vocab = load_verified(keras_dir, need_onnx=False)
    config = manifest.text.config()
    model = keras.models.load_model(keras_dir / (manifest.keras_file or "model.keras"))
    rows = [pad([vocab.encode_text(t, config)], config.maxlen, config.padding) for t in texts]
    model.predict(rows[0], verbose=0)

    def run() -> None:
        for row in rows:
            model.predict(row, verbose=0)

    return Throughput(
        "keras predict, one tweet per call (the notebook)", 1, len(texts), _timed(run)
    )


def sample(texts: Sequence[str], n: int) -> list[str]:
    """``n`` texts spread evenly over ``texts``, starting again from the top if it is short."""
    step = max(1, len(texts) // n)
    return list(itertools.islice(itertools.cycle(texts[::step]), n))


def mean_tokens(ids: Sequence[list[int]]) -> float:
    return float(np.mean([len(row) for row in ids]))
