"""The ONNX side of the export: reading and editing the graph tf2onnx made, so each fused
``LSTM`` stops at each tweet's last token and the graph has the project's names
(:mod:`sentistream.export.onnx_graph` says what each edit is for)."""

from __future__ import annotations

from collections.abc import Iterable

import onnx
from onnx import helper

from sentistream.export.errors import INPUT_NAME, OUTPUT_NAME, ConversionError

__all__ = [
    "add_sequence_lens",
    "assert_fused_lstms",
    "drop_unused_lstm_outputs",
    "feed_dense_from_y_h",
    "name_dynamic_axes",
    "remove_dead_nodes",
    "rename_tensor",
]

#: Ops that only reshape or select from a tensor; tf2onnx puts a chain of them between the
#: LSTM's ``Y`` output and the Dense layer to pick the last time step.
_VIEW_OPS = frozenset({"Squeeze", "Unsqueeze", "Slice", "Gather", "Reshape", "Identity"})
_DENSE_OPS = frozenset({"MatMul", "Gemm"})
_LOOP_OPS = frozenset({"Loop", "Scan"})


# --- reading the graph -----------------------------------------------------------------------


def _op_counts(graph: onnx.GraphProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _assert_single_fused_lstm(graph: onnx.GraphProto, what: str) -> None:
    """Exactly one ``LSTM`` node and no ``Loop``/``Scan``, or a :class:`ConversionError`."""
    assert_fused_lstms(graph, what, 1)


def assert_fused_lstms(graph: onnx.GraphProto, what: str, expected: int) -> None:
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


def rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor everywhere it appears (node inputs/outputs, graph inputs/outputs)."""
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.name == old:
            value.name = new


def add_sequence_lens(graph: onnx.GraphProto) -> None:
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


def feed_dense_from_y_h(graph: onnx.GraphProto) -> None:
    """Make the Dense layer read ``Y_h`` (each row's last real state), not ``Y``'s last step.

    tf2onnx follows Keras' ``outputs[:, -1]``: it slices the last time step out of ``Y``
    (``[time, directions, batch, hidden]``) and squeezes; for a bidirectional LSTM it also
    slices the reverse direction's first step and concatenates the two. With
    ``sequence_lens`` the last step is zero for every row shorter than the batch. ``Y_h``
    (``[directions, batch, hidden]`` in layout 0) holds the state at each row's own last step,
    for the reverse direction the state after the row's first token. A forward LSTM's Dense
    ``MatMul`` then reads ``Squeeze(Y_h)``; a bidirectional one's reads
    ``Reshape(Transpose(Y_h), [batch, 2 x hidden])``: forward state, then backward, which is
    Keras' ``concat`` order. The old slice chain becomes dead and :func:`remove_dead_nodes`
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


def drop_unused_lstm_outputs(graph: onnx.GraphProto) -> None:
    """Blank ``Y`` and ``Y_c`` once nothing reads them, so ONNX Runtime need not fill them.

    Runs after :func:`remove_dead_nodes`, so every remaining reader is a live one. Trailing
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


def remove_dead_nodes(graph: onnx.GraphProto) -> None:
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


def name_dynamic_axes(graph: onnx.GraphProto, *, num_labels: int) -> None:
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
