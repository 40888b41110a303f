"""The notebook's network, built with Keras 3.

Embedding 128 → SpatialDropout1D 0.4 → LSTM 196 (dropout 0.2, recurrent dropout 0.2) →
Dense 2 softmax, trained with Adam on categorical cross-entropy, as the notebook had it. Two
changes, both invisible to the labels of a fully padded tweet:

* ``mask_zero=True`` with post-padding, so the LSTM stops at each tweet's last real token and
  the same tweet gets the same probabilities whatever length its batch is padded to. That is
  what lets the exported model pad a micro-batch only to its own longest tweet.
* The time axis is ``None`` (variable), for the same reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import keras

__all__ = ["ModelConfig", "build_model"]


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    embedding_dim: int = 128
    spatial_dropout: float = 0.4
    lstm_units: int = 196
    dropout: float = 0.2
    recurrent_dropout: float = 0.2
    num_labels: int = 2
    learning_rate: float = 1e-3
    mask_zero: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model(config: ModelConfig) -> keras.Model:
    """Build and compile the classifier; input is int32 token ids of shape (batch, time)."""
    tokens = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(
        config.vocab_size, config.embedding_dim, mask_zero=config.mask_zero, name="embedding"
    )(tokens)
    x = keras.layers.SpatialDropout1D(config.spatial_dropout, name="spatial_dropout")(x)
    x = keras.layers.LSTM(
        config.lstm_units,
        dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout,
        name="lstm",
    )(x)
    probabilities = keras.layers.Dense(config.num_labels, activation="softmax", name="dense")(x)
    model = keras.Model(tokens, probabilities, name="sentistream_lstm")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
