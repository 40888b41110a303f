"""What the exporter raises when a model or graph is not the shape it knows how to edit."""

from __future__ import annotations

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "ConversionError"]

#: The exported graph's input (``int32 [batch, time]`` token ids) and output
#: (``float32 [batch, labels]`` probabilities).
INPUT_NAME = "token_ids"
OUTPUT_NAME = "probabilities"


class ConversionError(Exception):
    """The model or the graph tf2onnx made is not the shape this exporter knows how to edit."""
