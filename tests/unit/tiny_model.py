"""A tiny cleaning-v3 model folder built in the test itself (no TensorFlow, no shipped model).

``model.onnx`` is a bag of words: ``Gather`` (embedding, row 0 = padding = zeros) → ``ReduceSum``
over the tokens → ``Softmax``. Padding adds nothing, so padding to ``maxlen`` or to a batch's
longest gives the same probabilities, as the real masked LSTM does. ``tokenizer.json`` is a
word-level cleaning-v3 tokenizer; ``manifest.json`` names both with their sha256.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentistream.manifest import (
    Manifest,
    OnnxSection,
    SourceSection,
    TextSection,
    TrainingSection,
    VocabSection,
    sha256_file,
)
from sentistream.text import TOKENIZER_FILE, TextConfig, TweetTokenizer

LABELS = ["negative", "neutral", "positive"]
POSITIVE = ["love", "best", "amazing", "kind", "thanks", "emosmile", "emoheart"]
NEGATIVE = ["worst", "hate", "cancelled", "nobody", "bad", "emosad"]
NEUTRAL = ["ok", "battery", "chapter", "test"]
FILLER = ["i", "this", "so", "much", "day", "ever", "the", "a", "is", "xxuser", "xxnumber"]
WORDS = POSITIVE + NEGATIVE + NEUTRAL + FILLER


def _graph(tokenizer: TweetTokenizer) -> bytes:
    onnx = pytest.importorskip("onnx")
    helper, tensor = onnx.helper, onnx.numpy_helper
    weights = np.zeros((tokenizer.size, len(LABELS)), dtype=np.float32)
    weights[1] = [0.0, 0.1, 0.0]  # out of vocabulary leans neutral
    for words, column in ((NEGATIVE, 0), (NEUTRAL, 1), (POSITIVE, 2)):
        for word in words:
            weights[tokenizer.encode([word], maxlen=1)[0], column] = 2.0
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["embedding", "token_ids"], ["vectors"], axis=0),
            helper.make_node("ReduceSum", ["vectors", "axes"], ["logits"], keepdims=0),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "bag_of_words",
        [helper.make_tensor_value_info("token_ids", onnx.TensorProto.INT32, ["batch", "steps"])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            tensor.from_array(weights, "embedding"),
            tensor.from_array(np.array([1], dtype=np.int64), "axes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def build_model_folder(folder: Path, *, maxlen: int = 12) -> Path:
    """Write ``tokenizer.json``, ``model.onnx`` and ``manifest.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = TweetTokenizer.from_words(WORDS)
    tokenizer.save(folder / TOKENIZER_FILE)
    (folder / "model.onnx").write_bytes(_graph(tokenizer))
    Manifest(
        name="tiny",
        version="1",
        created_at="2026-12-02T00:00:00+00:00",
        labels=LABELS,
        text=TextSection.of(TextConfig(maxlen=maxlen, num_words=100)),
        vocab=VocabSection(sha256=sha256_file(folder / TOKENIZER_FILE), size=tokenizer.size),
        onnx=OnnxSection(
            file="model.onnx",
            sha256=sha256_file(folder / "model.onnx"),
            opset=17,
            input_name="token_ids",
            input_dtype="int32",
            output_name="probabilities",
            lstm_op="none (bag of words test graph)",
            variable_length=True,
            parity={},
        ),
        training=TrainingSection(
            sources=[
                SourceSection(
                    file="d.csv",
                    sha256="0" * 64,
                    encoding="utf-8",
                    weight=1.0,
                    rows=1,
                    split={"train": 1},
                )
            ],
            seed=1,
            epochs=1,
            batch_size=1,
            class_weight="balanced",
            glove=False,
            hyperparameters={},
            metrics={},
            baseline={},
            duration_seconds=0.0,
        ),
    ).write(folder)
    return folder
