"""Keras LSTM classifier → one fused ONNX ``LSTM`` per layer, each stopping at each tweet's
last token.

Each LSTM layer may be forward (the notebook's) or a ``Bidirectional`` pair with concatenated
outputs (tf2onnx merges the pair into one ``direction="bidirectional"`` node). Layers may be
stacked (every one but the last returning its sequence), and the last may feed either the
Dense layer directly (its last state) or :class:`~sentistream.trainer.model.AttentionPooling`,
whose token mask is an explicit part of the model, so tf2onnx writes it in plain ONNX ops.

The trained model has ``recurrent_dropout > 0`` and ``mask_zero=True``; tf2onnx turns either
into a generic ONNX ``Loop`` (about ten times slower). So :func:`convert`

1. builds a *twin* of the model with ``recurrent_dropout=0`` and ``mask_zero=False`` and copies
   the weights into it (dropout only acts in training, so inference is unchanged),
2. converts the twin with ``tf2onnx.convert.from_function`` on a ``tf.function`` whose input is
   ``int32 [batch, time]`` with both axes dynamic; that gives a single fused ``LSTM`` node,
3. edits the ONNX graph to put the mask back, exactly:

   * every ``LSTM`` node gets a ``sequence_lens`` input computed in the graph, the number of
     non-zero token ids in each row (post-padding puts every real token before the padding);
     a stacked layer then reads its predecessor's ``Y``, zero past each row's length, and
     attention pooling weighs those steps 0 through the model's own token mask;
   * with last-state pooling, the Dense layer reads the last ``LSTM``'s ``Y_h`` output (the
     state at each row's own last step; for the reverse direction, after its first token)
     instead of tf2onnx's slices of ``Y``, which are wrong as soon as a row ends early (``Y``
     is zero past ``sequence_lens``);
   * the graph input is ``token_ids`` and the output ``probabilities`` (``[batch, labels]``
     float32);
   * nodes and initializers left dead by the rewiring are removed,

4. checks the result: ``onnx.checker``, strict shape inference, exactly one ``LSTM`` per
   Keras LSTM layer and no ``Loop`` or ``Scan``.

With post-padding, the result equals the masked Keras model for any padded length, so a
micro-batch can be padded only to its own longest tweet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import onnx

from sentistream.export.errors import INPUT_NAME, OUTPUT_NAME, ConversionError
from sentistream.export.graph_edit import (
    _assert_single_fused_lstm,
    add_sequence_lens,
    assert_fused_lstms,
    drop_unused_lstm_outputs,
    feed_dense_from_y_h,
    name_dynamic_axes,
    remove_dead_nodes,
    rename_tensor,
)
from sentistream.export.twin import check_architecture, inference_twin, num_labels, to_onnx

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "ConversionError",
    "OnnxGraphInfo",
    "_assert_single_fused_lstm",
    "convert",
]

INPUT_DTYPE = "int32"


@dataclass(frozen=True)
class OnnxGraphInfo:
    input_name: str
    input_dtype: str
    output_name: str
    opset: int
    lstm_op: str
    variable_length: bool
    """True: the graph computes ``sequence_lens``, so a batch may be padded to any length."""
    lstm_layers: int = 1
    """Fused ``LSTM`` nodes, one per Keras LSTM layer."""
    pooling: str = "last"
    """``last`` (the last LSTM's ``Y_h``) or ``attention`` (plain ONNX ops over ``Y``)."""


def convert(model: keras.Model, onnx_path: Path, *, opset: int = 17) -> OnnxGraphInfo:
    """Export ``model`` (the trained, possibly masked Keras model) to ``onnx_path``."""
    architecture = check_architecture(model)
    variable_length = architecture.masked
    twin = inference_twin(model)
    proto = to_onnx(twin, opset)
    graph = proto.graph
    assert_fused_lstms(graph, "tf2onnx's output", architecture.layers)
    rename_tensor(graph, graph.input[0].name, INPUT_NAME)
    rename_tensor(graph, graph.output[0].name, OUTPUT_NAME)
    if variable_length:
        add_sequence_lens(graph)
    if architecture.last_state:
        feed_dense_from_y_h(graph)
    remove_dead_nodes(graph)
    drop_unused_lstm_outputs(graph)
    name_dynamic_axes(graph, num_labels=num_labels(model))
    del graph.value_info[:]  # stale after the edits; shape inference below rebuilds it
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    assert_fused_lstms(proto.graph, "the edited graph", architecture.layers)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(onnx_path))
    return OnnxGraphInfo(
        input_name=INPUT_NAME,
        input_dtype=INPUT_DTYPE,
        output_name=OUTPUT_NAME,
        opset=opset,
        lstm_op="LSTM",
        variable_length=variable_length,
        lstm_layers=architecture.layers,
        pooling="last" if architecture.last_state else "attention",
    )
