"""ONNX Runtime dynamic int8 quantization of an exported model.

Weights (the LSTM's ``W``/``R``, the Dense ``MatMul``, the embedding ``Gather``) are stored as
int8; activations are quantized on the fly. ONNX Runtime turns each fused ``LSTM`` (one per
layer) into its contrib op ``DynamicQuantizeLSTM``, which keeps the ``sequence_lens`` input, so
the int8 model is still variable-length. Labels can change: the caller must measure agreement
with the float model before serving it.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

__all__ = ["QuantizationError", "quantize_int8"]


class QuantizationError(Exception):
    """Quantization did not give the graph expected (its LSTMs, all of one op type)."""


def quantize_int8(src: Path, dst: Path) -> str:
    """Write the int8 dynamic quantization of ``src`` to ``dst``; return its LSTM op type.

    Expect ``DynamicQuantizeLSTM``. A plain ``LSTM`` means the recurrent weights stayed float
    (quantization skipped the node), which the caller may refuse or accept.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    before = sum(node.op_type == "LSTM" for node in onnx.load(str(src)).graph.node)
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    graph = onnx.load(str(dst)).graph
    lstm_ops = [str(node.op_type) for node in graph.node if node.op_type.endswith("LSTM")]
    if len(lstm_ops) != max(before, 1) or len(set(lstm_ops)) != 1:
        raise QuantizationError(
            f"{dst}: expected {max(before, 1)} LSTM op(s) of one type after quantization, "
            f"found {lstm_ops or 'none'}"
        )
    return lstm_ops[0]
