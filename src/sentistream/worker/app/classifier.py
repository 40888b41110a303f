"""The loop's :class:`Classifier` over ONNX Runtime, and loading a model folder as served."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

from sentistream.inference import SentimentModel
from sentistream.worker.core.drift import DriftReference
from sentistream.worker.core.model_slot import ServedModel, manifest_fingerprint
from sentistream.worker.core.ports import InferenceError
from sentistream.worker.settings import WorkerSettings

__all__ = ["OnnxClassifier", "load_served"]

log = logging.getLogger("sentistream.worker")


class OnnxClassifier:
    """The loop's :class:`Classifier` over a :class:`SentimentModel`."""

    def __init__(self, model: SentimentModel, bucket_size: int = 0) -> None:
        self.model = model
        self.labels = model.labels
        self.bucket_size = bucket_size

    def encode(self, text: str) -> list[int]:
        return self.model.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """One Rust call for the whole micro-batch, the GIL released while it runs."""
        return self.model.encode_batch(texts)

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        try:
            return self.model.predict_ids(ids, bucket_size=self.bucket_size)
        except (Fail, InvalidArgument, RuntimeException) as exc:
            raise InferenceError(str(exc)) from exc


def load_served(folder: Path, settings: WorkerSettings) -> ServedModel:
    """Load and verify the model in ``folder`` (a symlink is followed once, so every file comes
    from one folder) as the worker serves it."""
    folder = folder.resolve()
    fingerprint = manifest_fingerprint(folder)
    model = SentimentModel.load(folder, threads=settings.ort_threads)
    info = {"name": model.manifest.name, "version": model.manifest.version, "sha256": model.sha256}
    log.info(
        "model %s %s (sha256 %s…) loaded from %s",
        info["name"],
        info["version"],
        model.sha256[:12],
        folder,
    )
    drift = model.manifest.drift
    reference = (
        None
        if drift is None
        else DriftReference(
            drift.oov_token_ratio, drift.label_share, drift.confidence_p10, drift.mean_tokens
        )
    )
    return ServedModel(
        OnnxClassifier(model, settings.length_bucket_size), info, fingerprint, folder, reference
    )
