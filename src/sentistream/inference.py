"""Serving a model folder with ONNX Runtime; never imports TensorFlow.

:class:`SentimentModel` loads ``model.onnx`` + ``tokenizer.json`` after checking them against
``manifest.json``, checks the graph's input and output against the manifest too, and turns
texts (or already encoded token ids) into probabilities with one ONNX Runtime call per batch.
Texts are encoded by the model's own tokenizer file, in Rust: :meth:`SentimentModel.encode_batch`
is the serving path (one call a micro-batch, the GIL released while it runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from sentistream.manifest import Manifest, ManifestError, OnnxSection, load_verified
from sentistream.text import TextConfig, TweetTokenizer, pad, pad_to_longest

__all__ = ["Prediction", "SentimentModel"]

_ORT_TYPES = {"int32": "tensor(int32)", "int64": "tensor(int64)"}


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]


class SentimentModel:
    """A verified model folder, ready to classify."""

    def __init__(
        self,
        manifest: Manifest,
        tokenizer: TweetTokenizer,
        session: ort.InferenceSession,
        folder: Path,
    ) -> None:
        if manifest.onnx is None:  # load_verified(need_onnx=True) already refused this
            raise ManifestError(f"{folder}: the manifest has no onnx section")
        self.manifest = manifest
        self.onnx: OnnxSection = manifest.onnx
        self.tokenizer = tokenizer
        self.vocab = tokenizer
        """The same tokenizer, by the name callers used before cleaning v3."""
        self.folder = folder
        self.labels: tuple[str, ...] = tuple(manifest.labels)
        self.text_config: TextConfig = manifest.text.config()
        self._session = session
        self._dtype = np.dtype(self.onnx.input_dtype)
        self._check_graph()

    @classmethod
    def load(cls, folder: Path, *, threads: int = 0) -> SentimentModel:
        """Load and verify ``folder``; ``threads`` is ONNX Runtime's intra-op count (0: all)."""
        manifest, tokenizer = load_verified(folder)
        assert manifest.onnx is not None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(
            str(folder / manifest.onnx.file), options, providers=["CPUExecutionProvider"]
        )
        return cls(manifest, tokenizer, session, folder)

    @property
    def sha256(self) -> str:
        return self.onnx.sha256

    def _check_graph(self) -> None:
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        where = self.folder / self.onnx.file
        if [i.name for i in inputs] != [self.onnx.input_name]:
            raise ManifestError(
                f"{where}: graph inputs {[i.name for i in inputs]}, manifest says "
                f"[{self.onnx.input_name!r}]"
            )
        expected_type = _ORT_TYPES.get(self.onnx.input_dtype)
        if inputs[0].type != expected_type:
            raise ManifestError(
                f"{where}: input type {inputs[0].type}, manifest says {self.onnx.input_dtype}"
            )
        if self.onnx.output_name not in [o.name for o in outputs]:
            raise ManifestError(
                f"{where}: no output {self.onnx.output_name!r}; graph outputs are "
                f"{[o.name for o in outputs]}"
            )
        probe = self.predict_ids([[1]])
        if probe.shape != (1, len(self.labels)):
            raise ManifestError(
                f"{where}: output shape {probe.shape} for one tweet, expected "
                f"(1, {len(self.labels)}) for labels {list(self.labels)}"
            )

    def encode(self, text: str) -> list[int]:
        """Token ids of one tweet, cut to ``maxlen``, never empty."""
        return self.tokenizer.encode_text(text, self.text_config)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of every text, in one Rust call (the GIL released while it runs)."""
        return self.tokenizer.encode_batch(texts, self.text_config)

    def batch(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.int32]:
        """Pad a batch the way this model wants: to its longest tweet when it can."""
        if self.onnx.variable_length:
            return pad_to_longest(ids, self.text_config.maxlen, self.text_config.padding)
        return pad(ids, self.text_config.maxlen, self.text_config.padding)

    def predict_ids(
        self, ids: Sequence[Sequence[int]], *, bucket_size: int = 0
    ) -> npt.NDArray[np.float32]:
        """Probabilities of shape (len(ids), len(labels)), in the order of ``ids``.

        The fused LSTM's cost is rows times the longest real length in the call. With
        ``bucket_size`` > 0 (and a variable-length model) the rows are sorted by length and run
        in calls of ``bucket_size`` rows each, so short tweets stop sharing a call with long
        ones; a float model gives every row the same probabilities either way.
        """
        if bucket_size <= 0 or len(ids) <= bucket_size or not self.onnx.variable_length:
            return self._run(ids)
        order = np.argsort(np.fromiter((len(row) for row in ids), dtype=np.int64), kind="stable")
        out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        for start in range(0, len(ids), bucket_size):
            rows = order[start : start + bucket_size]
            out[rows] = self._run([ids[i] for i in rows])
        return out

    def _run(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        feed = {self.onnx.input_name: self.batch(ids).astype(self._dtype, copy=False)}
        (probabilities,) = self._session.run([self.onnx.output_name], feed)
        return np.asarray(probabilities, dtype=np.float32)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        probabilities = self.predict_ids(self.encode_batch(texts))
        return [self.to_prediction(row) for row in probabilities]

    def to_prediction(self, row: npt.NDArray[np.float32]) -> Prediction:
        return Prediction(
            label=self.labels[int(np.argmax(row))],
            probabilities={name: float(p) for name, p in zip(self.labels, row, strict=True)},
        )
