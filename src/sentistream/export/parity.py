"""Prove that ONNX Runtime gives the Keras model's answers on real tweets.

The reference is the ORIGINAL trained Keras model (masked, with its recurrent dropout), run with
``training=False`` on every tweet padded to ``maxlen``: the input the trainer scored. ONNX
Runtime is compared against it twice:

* ``full``: the same ``maxlen``-padded input, in chunks of ``batch_size``;
* ``longest``: the served path, micro-batches of ``batch_size`` tweets each padded only to its
  own longest tweet (:func:`~sentistream.text.pad_to_longest`). A variable-length export must
  give the same probabilities there; a fixed-length one is fed ``maxlen`` padding as served.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from sentistream.text import pad, pad_to_longest

__all__ = [
    "ParityReport",
    "check_parity",
    "label_agreement",
    "onnx_probabilities",
    "onnx_session",
]

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ParityReport:
    n: int
    """Tweets compared."""
    max_abs_diff_full: float
    """Largest |ONNX - Keras| probability with every tweet padded to ``maxlen``."""
    max_abs_diff_longest: float
    """The same with micro-batches padded to their own longest tweet (the served path)."""
    labels_equal: bool
    """Every tweet gets Keras' label in both modes."""
    label_agreement: float
    """Fraction of tweets whose label matches Keras' in both modes."""
    atol: float

    @property
    def max_abs_diff(self) -> float:
        return max(self.max_abs_diff_full, self.max_abs_diff_longest)

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.atol and self.labels_equal

    def describe(self) -> str:
        return (
            f"{self.n} tweets: max |ONNX - Keras| {self.max_abs_diff_full:.3g} padded to maxlen, "
            f"{self.max_abs_diff_longest:.3g} padded to each batch's longest (atol "
            f"{self.atol:g}); label agreement {self.label_agreement:.4%}"
        )

    def to_manifest(self) -> dict[str, Any]:
        """The figures as they go into ``manifest.json``'s ``onnx.parity``."""
        return {
            "reference": "Keras model (masked, training=False) on tweets padded to maxlen",
            "n": self.n,
            "max_abs_diff_full_padding": self.max_abs_diff_full,
            "max_abs_diff_pad_to_longest": self.max_abs_diff_longest,
            "labels_equal": self.labels_equal,
            "label_agreement": self.label_agreement,
            "atol": self.atol,
        }


def onnx_session(onnx_path: Path, *, threads: int = 0) -> ort.InferenceSession:
    """A CPU session; ``threads`` is ONNX Runtime's intra-op thread count (0: its default)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def _chunks(
    token_ids: Sequence[Sequence[int]], batch_size: int
) -> Iterator[Sequence[Sequence[int]]]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(token_ids), batch_size):
        yield token_ids[start : start + batch_size]


def _run(session: ort.InferenceSession, batch: npt.NDArray[np.int32]) -> FloatArray:
    (input_meta,) = session.get_inputs()
    (probabilities,) = session.run(None, {input_meta.name: batch})
    return np.asarray(probabilities, dtype=np.float32)


def onnx_probabilities(
    session: ort.InferenceSession,
    token_ids: Sequence[Sequence[int]],
    *,
    maxlen: int,
    batch_size: int = 256,
    pad_to_batch_longest: bool = True,
) -> FloatArray:
    """ONNX Runtime probabilities, ``batch_size`` tweets per call, post-padded.

    ``pad_to_batch_longest`` pads each call's tweets to their own longest (never beyond
    ``maxlen``), as the worker does; otherwise every call is padded to ``maxlen``.
    """
    parts = [
        _run(
            session,
            pad_to_longest(chunk, maxlen) if pad_to_batch_longest else pad(chunk, maxlen),
        )
        for chunk in _chunks(token_ids, batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def keras_probabilities(
    model: keras.Model, token_ids: Sequence[Sequence[int]], *, maxlen: int, batch_size: int = 256
) -> FloatArray:
    """The Keras model's probabilities with ``training=False``, every tweet padded to maxlen."""
    parts = [
        np.asarray(model(pad(chunk, maxlen), training=False), dtype=np.float32)
        for chunk in _chunks(token_ids, batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def check_parity(
    keras_model: keras.Model,
    onnx_path: Path,
    token_ids: list[list[int]],
    *,
    maxlen: int,
    atol: float = 1e-5,
    batch_size: int = 256,
    variable_length: bool = True,
) -> ParityReport:
    """Compare ONNX Runtime with ``keras_model`` on ``token_ids`` (see the module docstring).

    ``variable_length=False`` (a graph without ``sequence_lens``) feeds the served-path
    micro-batches padded to ``maxlen``, since that is how such a model is served.
    """
    if not token_ids:
        raise ValueError("check_parity needs at least one tweet")
    reference = keras_probabilities(keras_model, token_ids, maxlen=maxlen, batch_size=batch_size)
    session = onnx_session(onnx_path)
    full = onnx_probabilities(
        session, token_ids, maxlen=maxlen, batch_size=batch_size, pad_to_batch_longest=False
    )
    longest = onnx_probabilities(
        session,
        token_ids,
        maxlen=maxlen,
        batch_size=batch_size,
        pad_to_batch_longest=variable_length,
    )
    labels = reference.argmax(axis=1)
    agree = (full.argmax(axis=1) == labels) & (longest.argmax(axis=1) == labels)
    return ParityReport(
        n=len(token_ids),
        max_abs_diff_full=float(np.max(np.abs(full - reference))),
        max_abs_diff_longest=float(np.max(np.abs(longest - reference))),
        labels_equal=bool(agree.all()),
        label_agreement=float(agree.mean()),
        atol=atol,
    )


def label_agreement(
    onnx_a: Path,
    onnx_b: Path,
    token_ids: list[list[int]],
    *,
    maxlen: int,
    batch_size: int = 256,
) -> float:
    """Fraction of tweets two ONNX models label alike on the served path (e.g. int8 vs float)."""
    if not token_ids:
        raise ValueError("label_agreement needs at least one tweet")
    a, b = (
        onnx_probabilities(onnx_session(path), token_ids, maxlen=maxlen, batch_size=batch_size)
        for path in (onnx_a, onnx_b)
    )
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))
