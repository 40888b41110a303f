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

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from onnx import helper

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "ConversionError", "OnnxGraphInfo", "convert"]

INPUT_NAME = "token_ids"
OUTPUT_NAME = "probabilities"
INPUT_DTYPE = "int32"

#: Ops that only reshape or select from a tensor; tf2onnx puts a chain of them between the
#: LSTM's ``Y`` output and the Dense layer to pick the last time step.
_VIEW_OPS = frozenset({"Squeeze", "Unsqueeze", "Slice", "Gather", "Reshape", "Identity"})
_DENSE_OPS = frozenset({"MatMul", "Gemm"})
_LOOP_OPS = frozenset({"Loop", "Scan"})
_TWIN_ATOL = 1e-5


class ConversionError(Exception):
    """The model or the graph tf2onnx made is not the shape this exporter knows how to edit."""


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
    architecture = _check_architecture(model)
    variable_length = architecture.masked
    twin = _inference_twin(model)
    proto = _tf2onnx(twin, opset)
    graph = proto.graph
    _assert_fused_lstms(graph, "tf2onnx's output", architecture.layers)
    _rename_tensor(graph, graph.input[0].name, INPUT_NAME)
    _rename_tensor(graph, graph.output[0].name, OUTPUT_NAME)
    if variable_length:
        _add_sequence_lens(graph)
    if architecture.last_state:
        _feed_dense_from_y_h(graph)
    _remove_dead_nodes(graph)
    _drop_unused_lstm_outputs(graph)
    _name_dynamic_axes(graph, num_labels=_num_labels(model))
    del graph.value_info[:]  # stale after the edits; shape inference below rebuilds it
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    _assert_fused_lstms(proto.graph, "the edited graph", architecture.layers)
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


def _check_architecture(model: keras.Model) -> _Architecture:
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


def _num_labels(model: keras.Model) -> int:
    return int(model.outputs[0].shape[-1])


def _inference_twin(model: keras.Model) -> keras.Model:
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

    def fused(config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "recurrent_dropout": 0.0, "use_cudnn": "auto", "unroll": False}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if isinstance(layer, keras.layers.LSTM):
            config = fused(config)
        elif isinstance(layer, keras.layers.Bidirectional):
            config["layer"] = {**config["layer"], "config": fused(config["layer"]["config"])}
            if config.get("backward_layer"):
                backward = config["backward_layer"]
                config["backward_layer"] = {**backward, "config": fused(backward["config"])}
        elif isinstance(layer, keras.layers.Embedding):
            config.update(mask_zero=False)
        return type(layer).from_config(config)

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
        layer = clone(operation)
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


def _tf2onnx(twin: keras.Model, opset: int) -> onnx.ModelProto:
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


# --- reading the graph -----------------------------------------------------------------------


def _op_counts(graph: onnx.GraphProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _assert_single_fused_lstm(graph: onnx.GraphProto, what: str) -> None:
    """Exactly one ``LSTM`` node and no ``Loop``/``Scan``, or a :class:`ConversionError`."""
    _assert_fused_lstms(graph, what, 1)


def _assert_fused_lstms(graph: onnx.GraphProto, what: str, expected: int) -> None:
    """``expected`` ``LSTM`` nodes (one per layer) and no ``Loop``/``Scan``."""
    counts = _op_counts(graph)
    loops = {op: n for op, n in counts.items() if op in _LOOP_OPS}
    if loops or counts.get("LSTM", 0) != expected:
        raise ConversionError(
            f"{what} has {counts.get('LSTM', 0)} fused LSTM node(s) and loops {loops or 'none'}; "
            f"expected exactly {expected} LSTM and no Loop. tf2onnx only fuses an LSTM without "
            f"recurrent dropout or mask. Ops: {dict(sorted(counts.items()))}"
        )


def _lstm_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    nodes = [node for node in graph.node if node.op_type == "LSTM"]
    for node in nodes:
        _direction(node)
    return nodes


def _find_lstm(graph: onnx.GraphProto) -> onnx.NodeProto:
    """The last LSTM layer: the one whose ``Y`` no other ``LSTM`` reads."""
    nodes = _lstm_nodes(graph)
    read_by_lstm = {name for node in nodes for name in node.input}
    last = [node for node in nodes if not _reaches(graph, node.output[0], read_by_lstm)]
    if len(last) != 1:
        raise ConversionError(f"expected one last LSTM layer, found {len(last)}")
    return last[0]


def _reaches(graph: onnx.GraphProto, tensor: str, targets: set[str]) -> bool:
    """Whether ``tensor`` flows (through any nodes) into one of ``targets``."""
    frontier, seen = [tensor], set()
    while frontier:
        current = frontier.pop()
        if current in targets:
            return True
        if current in seen:
            continue
        seen.add(current)
        for node in _consumers(graph, current):
            if node.op_type == "LSTM":
                return True
            frontier.extend(node.output)
    return False


def _direction(lstm: onnx.NodeProto) -> str:
    """``forward`` or ``bidirectional`` (a reverse-only LSTM is not something Keras makes)."""
    attributes = {a.name: helper.get_attribute_value(a) for a in lstm.attribute}
    raw = attributes.get("direction", b"forward")
    direction = raw.decode() if isinstance(raw, bytes) else str(raw)
    if direction not in ("forward", "bidirectional"):
        raise ConversionError(
            f"the LSTM node runs {direction!r}; expected forward or bidirectional"
        )
    return direction


def _consumers(graph: onnx.GraphProto, tensor: str) -> list[onnx.NodeProto]:
    return [node for node in graph.node if tensor in node.input]


def _layout(lstm: onnx.NodeProto) -> int:
    for attribute in lstm.attribute:
        if attribute.name == "layout":
            return int(helper.get_attribute_value(attribute))
    return 0


def _unique(graph: onnx.GraphProto, base: str) -> str:
    """A tensor/node name not used anywhere in ``graph``."""
    taken = {name for node in graph.node for name in (*node.input, *node.output, node.name)}
    taken.update(init.name for init in graph.initializer)
    taken.update(value.name for value in (*graph.input, *graph.output))
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


# --- editing the graph -----------------------------------------------------------------------


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor everywhere it appears (node inputs/outputs, graph inputs/outputs)."""
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.name == old:
            value.name = new


def _add_sequence_lens(graph: onnx.GraphProto) -> None:
    """Give every LSTM a ``sequence_lens`` input: the count of non-zero token ids per row.

    ``Cast(Not(Equal(token_ids, 0)), int32)`` marks real tokens with 1, ``ReduceSum`` over the
    time axis (1) counts them, and a final ``Cast`` to int32 makes the type the ``LSTM`` op
    requires explicit. ``sequence_lens`` is the LSTM's fifth input (index 4); with it the op
    stops each row at its own length, which is what Keras' mask does with post-padding.
    """
    lstms = _lstm_nodes(graph)
    for lstm in lstms:
        if len(lstm.input) > 4 and lstm.input[4]:
            raise ConversionError(f"the LSTM already has a sequence_lens input {lstm.input[4]!r}")
    zero = _unique(graph, "pad_id")
    axes = _unique(graph, "time_axis")
    graph.initializer.extend(
        [
            helper.make_tensor(zero, onnx.TensorProto.INT32, [], [0]),
            helper.make_tensor(axes, onnx.TensorProto.INT64, [1], [1]),
        ]
    )
    is_pad, is_token, ones, summed, lengths = (
        _unique(graph, f"sequence_lens/{step}")
        for step in ("is_pad", "is_token", "token_ones", "token_count", "lengths")
    )
    nodes = [
        helper.make_node("Equal", [INPUT_NAME, zero], [is_pad], name=is_pad),
        helper.make_node("Not", [is_pad], [is_token], name=is_token),
        helper.make_node("Cast", [is_token], [ones], name=ones, to=onnx.TensorProto.INT32),
        helper.make_node("ReduceSum", [ones, axes], [summed], name=summed, keepdims=0),
        helper.make_node("Cast", [summed], [lengths], name=lengths, to=onnx.TensorProto.INT32),
    ]
    for lstm in lstms:
        while len(lstm.input) < 5:
            lstm.input.append("")
        lstm.input[4] = lengths
    _insert_before(graph, lstms[0], nodes)


def _feed_dense_from_y_h(graph: onnx.GraphProto) -> None:
    """Make the Dense layer read ``Y_h`` (each row's last real state), not ``Y``'s last step.

    tf2onnx follows Keras' ``outputs[:, -1]``: it slices the last time step out of ``Y``
    (``[time, directions, batch, hidden]``) and squeezes; for a bidirectional LSTM it also
    slices the reverse direction's first step and concatenates the two. With
    ``sequence_lens`` the last step is zero for every row shorter than the batch. ``Y_h``
    (``[directions, batch, hidden]`` in layout 0) holds the state at each row's own last step,
    for the reverse direction the state after the row's first token. A forward LSTM's Dense
    ``MatMul`` then reads ``Squeeze(Y_h)``; a bidirectional one's reads
    ``Reshape(Transpose(Y_h), [batch, 2 x hidden])``: forward state, then backward, which is
    Keras' ``concat`` order. The old slice chain becomes dead and :func:`_remove_dead_nodes`
    drops it.
    """
    lstm = _find_lstm(graph)
    features = _dense_input(graph, lstm.output[0])
    if not lstm.output[1]:
        lstm.output[1] = _unique(graph, f"{lstm.name}/Y_h")
    last_state = _unique(graph, "lstm_last_state")
    if _direction(lstm) == "forward":
        direction_axis = _unique(graph, "lstm_direction_axis")
        graph.initializer.append(
            helper.make_tensor(direction_axis, onnx.TensorProto.INT64, [1], [_layout(lstm)])
        )
        nodes = [
            helper.make_node(
                "Squeeze", [lstm.output[1], direction_axis], [last_state], name=last_state
            )
        ]
    else:
        batch_first = _unique(graph, "lstm_states_batch_first")
        flat_shape = _unique(graph, "lstm_states_flat_shape")
        graph.initializer.append(
            helper.make_tensor(flat_shape, onnx.TensorProto.INT64, [2], [0, -1])
        )
        nodes = []
        states = lstm.output[1]
        if _layout(lstm) == 0:
            nodes.append(
                helper.make_node(
                    "Transpose", [states], [batch_first], name=batch_first, perm=[1, 0, 2]
                )
            )
            states = batch_first
        nodes.append(
            helper.make_node("Reshape", [states, flat_shape], [last_state], name=last_state)
        )
    for node in _consumers(graph, features):
        if node.op_type in _DENSE_OPS:
            node.input[:] = [last_state if name == features else name for name in node.input]
    _insert_after(graph, lstm, nodes)


def _dense_input(graph: onnx.GraphProto, y: str) -> str:
    """From the LSTM's ``Y``, walk through view ops (and one ``Concat`` of the two directions)
    to the Dense layer; return the tensor its ``MatMul``/``Gemm`` reads.

    Raises :class:`ConversionError` if ``Y`` reaches anything else or more than one Dense
    input, since rewiring would then change more than the Dense layer's input.
    """
    frontier, seen, dense_inputs = [y], set(), set()
    while frontier:
        tensor = frontier.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        consumers = _consumers(graph, tensor)
        if not consumers:
            raise ConversionError(f"tensor {tensor!r} after the LSTM reaches no Dense layer")
        for node in consumers:
            if node.op_type in _DENSE_OPS:
                dense_inputs.add(tensor)
            elif node.op_type in _VIEW_OPS or node.op_type == "Concat":
                frontier.extend(node.output)
            else:
                raise ConversionError(
                    f"the LSTM's Y output reaches a {node.op_type} node ({node.name}) before "
                    "any MatMul; cannot tell which tensor is the Dense layer's input"
                )
    if len(dense_inputs) != 1:
        raise ConversionError(
            f"the LSTM's Y output reaches {len(dense_inputs)} Dense inputs; expected one"
        )
    (features,) = dense_inputs
    return features


def _drop_unused_lstm_outputs(graph: onnx.GraphProto) -> None:
    """Blank ``Y`` and ``Y_c`` once nothing reads them, so ONNX Runtime need not fill them.

    Runs after :func:`_remove_dead_nodes`, so every remaining reader is a live one. Trailing
    empty outputs are removed (the ONNX convention for omitted optional outputs).
    """
    read = {name for node in graph.node for name in node.input}
    read.update(value.name for value in graph.output)
    for lstm in _lstm_nodes(graph):
        for index, name in enumerate(lstm.output):
            if name and name not in read:
                lstm.output[index] = ""
        while lstm.output and not lstm.output[-1]:
            lstm.output.pop()


def _live_node_names(graph: onnx.GraphProto) -> set[str]:
    """Names of nodes the graph outputs depend on (a backward walk from the outputs)."""
    producers = {out: node for node in graph.node for out in node.output if out}
    needed = [value.name for value in graph.output]
    live: set[str] = set()
    seen: set[str] = set()
    while needed:
        tensor = needed.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        node = producers.get(tensor)
        if node is None or node.name in live:
            continue
        live.add(node.name)
        needed.extend(name for name in node.input if name)
    return live


def _remove_dead_nodes(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs reach no graph output, then initializers nothing reads."""
    names = [node.name for node in graph.node]
    if len(set(names)) != len(names) or not all(names):
        raise ConversionError("tf2onnx produced unnamed or duplicate node names")
    live = _live_node_names(graph)
    kept = [node for node in graph.node if node.name in live]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def _insert_before(
    graph: onnx.GraphProto, anchor: onnx.NodeProto, nodes: Iterable[onnx.NodeProto]
) -> None:
    _insert_at(graph, _index_of(graph, anchor), nodes)


def _insert_after(
    graph: onnx.GraphProto, anchor: onnx.NodeProto, nodes: Iterable[onnx.NodeProto]
) -> None:
    _insert_at(graph, _index_of(graph, anchor) + 1, nodes)


def _index_of(graph: onnx.GraphProto, node: onnx.NodeProto) -> int:
    for index, candidate in enumerate(graph.node):
        if candidate.name == node.name:
            return index
    raise ConversionError(f"node {node.name!r} is not in the graph")  # pragma: no cover


def _insert_at(graph: onnx.GraphProto, index: int, nodes: Iterable[onnx.NodeProto]) -> None:
    """Insert ``nodes`` at ``index``, keeping the node list topologically sorted."""
    current = list(graph.node)
    current[index:index] = list(nodes)
    del graph.node[:]
    graph.node.extend(current)


def _name_dynamic_axes(graph: onnx.GraphProto, *, num_labels: int) -> None:
    """Declare ``token_ids`` as int32 ``[batch, time]`` and ``probabilities`` float32
    ``[batch, num_labels]``, replacing tf2onnx's ``unk__`` dimension names."""
    (token_ids,) = graph.input
    (probabilities,) = graph.output
    token_ids.CopyFrom(
        helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.INT32, ["batch", "time"])
    )
    probabilities.CopyFrom(
        helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, ["batch", num_labels])
    )
