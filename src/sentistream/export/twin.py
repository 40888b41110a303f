"""The Keras side of the export: which architecture a model has, its inference twin (no
recurrent dropout, no mask: what gives one fused ONNX ``LSTM`` per layer), and tf2onnx's
conversion of that twin (:mod:`sentistream.export.onnx_graph` says why)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx

from sentistream.export.errors import INPUT_NAME, ConversionError

__all__ = ["check_architecture", "inference_twin", "num_labels", "to_onnx"]

_TWIN_ATOL = 1e-5


# --- the Keras side --------------------------------------------------------------------------


def _layers_of(model: keras.Model, kind: type[keras.layers.Layer]) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, kind)]


def _lstm_layers(model: keras.Model) -> list[Any]:
    """The model's LSTM layers, a ``Bidirectional`` wrapper's pair counted as one."""
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.LSTM)
        or (
            isinstance(layer, keras.layers.Bidirectional)
            and isinstance(layer.forward_layer, keras.layers.LSTM)
        )
    ]


@dataclass(frozen=True)
class _Architecture:
    masked: bool
    """``mask_zero=True``: the export computes ``sequence_lens``."""
    layers: int
    """LSTM layers (a ``Bidirectional`` pair counted once): fused ONNX ``LSTM`` nodes expected."""
    last_state: bool
    """The last LSTM returns its last state to the Dense layer (no attention pooling)."""


def check_architecture(model: keras.Model) -> _Architecture:
    """Refuse models the graph edits would get wrong.

    The edits assume one Embedding feeding one or more stacked LSTMs (forward, or
    ``Bidirectional`` pairs whose outputs are concatenated), every one but the last returning
    its whole sequence; the last returns only its last state to the Dense layer, or its
    sequence to :class:`~sentistream.trainer.model.AttentionPooling`. A masked Embedding
    (``mask_zero=True``) is what makes ``sequence_lens`` the right answer; without a mask
    Keras runs over the padding too, and so must the export.
    """
    from sentistream.trainer.model import AttentionPooling

    embeddings = _layers_of(model, keras.layers.Embedding)
    lstms = _lstm_layers(model)
    if len(embeddings) != 1 or not lstms:
        raise ConversionError(
            f"expected one Embedding and at least one LSTM layer, found {len(embeddings)} "
            f"and {len(lstms)}"
        )
    attention = bool(_layers_of(model, AttentionPooling))
    for position, layer in enumerate(lstms):
        if isinstance(layer, keras.layers.Bidirectional):
            if layer.merge_mode != "concat":
                raise ConversionError(
                    "a Bidirectional LSTM must concatenate its directions, not "
                    f"{layer.merge_mode!r}"
                )
            lstm = layer.forward_layer
        else:
            lstm = layer
        last = position == len(lstms) - 1
        sequences = attention or not last
        if lstm.return_sequences != sequences or lstm.go_backwards or lstm.stateful:
            raise ConversionError(
                f"LSTM {position + 1} of {len(lstms)} must be forward, stateless and return "
                f"{'its sequence' if sequences else 'only its last output'} "
                f"(return_sequences={lstm.return_sequences}, go_backwards={lstm.go_backwards}, "
                f"stateful={lstm.stateful})"
            )
    return _Architecture(
        masked=bool(embeddings[0].mask_zero), layers=len(lstms), last_state=not attention
    )


def num_labels(model: keras.Model) -> int:
    return int(model.outputs[0].shape[-1])


def _fused(config: dict[str, Any]) -> dict[str, Any]:
    """An LSTM's config as the fused kernel wants it."""
    return {**config, "recurrent_dropout": 0.0, "use_cudnn": "auto", "unroll": False}


def _clone_for_inference(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fresh layer like ``layer``, its LSTMs fused and its embedding unmasked."""
    config = layer.get_config()
    if isinstance(layer, keras.layers.LSTM):
        config = _fused(config)
    elif isinstance(layer, keras.layers.Bidirectional):
        config["layer"] = {**config["layer"], "config": _fused(config["layer"]["config"])}
        if config.get("backward_layer"):
            backward = config["backward_layer"]
            config["backward_layer"] = {**backward, "config": _fused(backward["config"])}
    elif isinstance(layer, keras.layers.Embedding):
        config.update(mask_zero=False)
    return type(layer).from_config(config)


def inference_twin(model: keras.Model) -> keras.Model:
    """The same network with ``recurrent_dropout=0`` and no mask, holding the same weights.

    Keras 3 only calls the backend's fused LSTM kernel when ``recurrent_dropout`` is 0, and
    tf2onnx only recognises that kernel's loop when no mask reaches it; otherwise it emits a
    generic ``Loop``. Neither setting changes what the model computes at inference (dropout
    only acts in training; the mask is put back in the ONNX graph as ``sequence_lens``).

    The twin is rebuilt layer by layer, following the functional graph, rather than with
    ``keras.models.clone_model``: a saved functional model records the mask as an explicit
    ``NotEqual`` op passed to the LSTMs as ``mask=``, and cloning would replay it; the rebuild
    leaves that op and every ``mask=`` argument out. :func:`_check_twin` then proves it.
    """
    tokens = keras.Input(shape=(None,), dtype="int32", name=INPUT_NAME)
    tensors: dict[int, Any] = {id(model.inputs[0]): tokens}
    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []
    for operation in model.operations:
        if isinstance(operation, keras.layers.InputLayer):
            continue
        node = operation._inbound_nodes[0]
        if not isinstance(operation, keras.layers.Layer):
            # The mask op a saved model records (NotEqual of the token ids), passed to the
            # LSTMs as ``mask=``: the twin has no mask, so it is left out.
            if type(operation).__name__ != "NotEqual":
                raise ConversionError(
                    f"{model.name} holds a bare {type(operation).__name__} op; the exporter "
                    "rebuilds layers and the mask op only"
                )
            continue
        try:
            args = keras.tree.map_structure(
                lambda v: tensors[id(v)] if isinstance(v, keras.KerasTensor) else v,
                node.arguments.args,
            )
        except KeyError as exc:
            raise ConversionError(
                f"layer {operation.name} of {model.name} reads a tensor the rebuild does not "
                "have (the mask op?)"
            ) from exc
        kwargs = {
            key: value
            for key, value in node.arguments.kwargs.items()
            if key not in ("mask", "training")
        }
        if any(isinstance(v, keras.KerasTensor) for v in keras.tree.flatten(kwargs)):
            raise ConversionError(f"layer {operation.name} takes a tensor keyword argument")
        layer = _clone_for_inference(operation)
        outputs = layer(*args, **kwargs)
        for old, new in zip(
            keras.tree.flatten(node.output_tensors), keras.tree.flatten(outputs), strict=True
        ):
            tensors[id(old)] = new
        pairs.append((operation, layer))
    twin = keras.Model(tokens, tensors[id(model.outputs[0])], name=f"{model.name}_inference_twin")
    try:
        for original, rebuilt in pairs:
            rebuilt.set_weights(original.get_weights())
    except ValueError as exc:
        raise ConversionError(
            f"could not copy the weights into a layer-by-layer rebuild of {model.name}; is it "
            f"Embedding → ... → LSTM(s) → [attention] → Dense? ({exc})"
        ) from exc
    _check_twin(model, twin)
    return twin


def _check_twin(model: keras.Model, twin: keras.Model) -> None:
    """On unpadded rows (where the mask changes nothing) the twin must match the model."""
    probe = np.random.default_rng(0).integers(2, _vocab_size(model), size=(4, 7), dtype=np.int32)
    expected = np.asarray(model(probe, training=False))
    actual = np.asarray(twin(probe, training=False))
    difference = float(np.max(np.abs(expected - actual)))
    if difference > _TWIN_ATOL:
        raise ConversionError(
            f"the inference twin differs from the model by {difference:.3g} on unpadded "
            "input; the model is not the simple chain this exporter rebuilds"
        )


def _vocab_size(model: keras.Model) -> int:
    (embedding,) = _layers_of(model, keras.layers.Embedding)
    return int(embedding.input_dim)


def to_onnx(twin: keras.Model, opset: int) -> onnx.ModelProto:
    """Run tf2onnx on a ``tf.function`` (``from_keras`` fails on Keras 3 models)."""
    signature = [tf.TensorSpec([None, None], tf.int32, name=INPUT_NAME)]

    def serve(token_ids: tf.Tensor) -> tf.Tensor:
        return twin(token_ids, training=False)

    function = tf.function(serve, input_signature=signature)
    proto: onnx.ModelProto
    proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=opset)
    if len(proto.graph.input) != 1 or len(proto.graph.output) != 1:
        raise ConversionError(
            f"tf2onnx made a graph with inputs {[i.name for i in proto.graph.input]} and "
            f"outputs {[o.name for o in proto.graph.output]}; expected one of each"
        )
    return proto
