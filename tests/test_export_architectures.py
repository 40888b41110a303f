"""The exporter on every network the trainer can build: stacked layers and attention pooling.

Each model is trained briefly on masked, post-padded rows of random lengths, saved and loaded
(as ``sentistream export`` loads it), converted, and compared with Keras: one fused ``LSTM``
per layer with ``sequence_lens``, no ``Loop``, the same probabilities within 1e-5 for rows
padded to ``maxlen`` and to their batch's longest, every label equal; int8 keeps one
``DynamicQuantizeLSTM`` per layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

MAXLEN = 24


def _rows(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [list(map(int, rng.integers(2, 120, size=int(k)))) for k in rng.integers(1, 22, n)]


@pytest.mark.parametrize(
    "levers",
    [
        {"pooling": "attention"},
        {"lstm_layers": 2},
        {"lstm_layers": 2, "pooling": "attention", "embedding_noise": 0.3},
        {"lstm_layers": 2, "bidirectional": False},
    ],
    ids=["attention", "two-layers", "two-layers-attention-noise", "two-forward-layers"],
)
def test_stacked_and_attention_models_export_exactly(
    levers: dict[str, Any], tmp_path: Path
) -> None:
    import keras
    import onnx

    from sentistream.export.onnx_graph import convert
    from sentistream.export.parity import onnx_session
    from sentistream.export.quantize import quantize_int8
    from sentistream.text import pad, pad_to_longest
    from sentistream.trainer.model import ModelConfig, build_model

    keras.utils.set_random_seed(3)
    config = ModelConfig(
        vocab_size=120, embedding_dim=8, lstm_units=6, recurrent_dropout=0.2, **levers
    )
    model = build_model(config)
    rows = _rows(320, seed=1)
    x = pad(rows, MAXLEN, "post")
    y = np.eye(3, dtype=np.float32)[np.random.default_rng(2).integers(0, 3, len(rows))]
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.save(tmp_path / "model.keras")
    model = keras.models.load_model(tmp_path / "model.keras", compile=False)

    info = convert(model, tmp_path / "model.onnx")
    layers = config.lstm_layers
    assert info.variable_length
    assert info.lstm_layers == layers
    assert info.pooling == config.pooling
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("LSTM") == layers
    assert "Loop" not in ops
    assert "Scan" not in ops
    lengths = {node.input[4] for node in graph.node if node.op_type == "LSTM"}
    assert len(lengths) == 1
    assert "" not in lengths

    held_out = _rows(200, seed=5)
    reference = np.asarray(model(pad(held_out, MAXLEN, "post"), training=False))
    session = onnx_session(tmp_path / "model.onnx")
    full = session.run(None, {"token_ids": pad(held_out, MAXLEN, "post")})[0]
    longest = np.concatenate(
        [
            session.run(None, {"token_ids": pad_to_longest(held_out[i : i + 16], MAXLEN)})[0]
            for i in range(0, len(held_out), 16)
        ]
    )
    for served in (full, longest):
        assert float(np.max(np.abs(served - reference))) <= 1e-5
        assert (served.argmax(axis=1) == reference.argmax(axis=1)).all()

    assert quantize_int8(tmp_path / "model.onnx", tmp_path / "int8.onnx") == "DynamicQuantizeLSTM"
    int8_ops = [node.op_type for node in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert int8_ops.count("DynamicQuantizeLSTM") == layers
