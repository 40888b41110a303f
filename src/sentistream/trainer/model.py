"""The notebook's network family, built with Keras 3.

Embedding → SpatialDropout1D → LSTM (optionally bidirectional) → Dense softmax, trained with
Adam on categorical cross-entropy. The notebook had Embedding 128 → SpatialDropout1D 0.4 →
LSTM 196 (dropout 0.2, recurrent dropout 0.2) → Dense 2; :class:`ModelConfig`'s defaults are
what ships now (see the README's model card for how they were chosen). Two changes from the
notebook, both invisible to the labels of a fully padded tweet:

* ``mask_zero=True`` with post-padding, so the LSTM stops at each tweet's last real token and
  the same tweet gets the same probabilities whatever length its batch is padded to. That is
  what lets the exported model pad a micro-batch only to its own longest tweet.
* The time axis is ``None`` (variable), for the same reason.

The embedding may start from pretrained word vectors (``embedding_init``, see
:mod:`sentistream.trainer.glove`); it keeps training with the rest of the network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import keras
import numpy as np
import numpy.typing as npt

__all__ = ["ModelConfig", "build_model"]


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    embedding_dim: int = 50
    spatial_dropout: float = 0.3
    lstm_units: int = 128
    """Units per direction."""
    bidirectional: bool = True
    dropout: float = 0.2
    recurrent_dropout: float = 0.0
    num_labels: int = 3
    learning_rate: float = 2e-3
    mask_zero: bool = True
    train_embedding: bool = True
    """False keeps the word vectors as they start (GloVe's), so unseen words stay comparable."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model(
    config: ModelConfig, embedding_init: npt.NDArray[np.float32] | None = None
) -> keras.Model:
    """Build and compile the classifier; input is int32 token ids of shape (batch, time).

    ``embedding_init`` (``vocab_size x embedding_dim``) replaces the embedding's random start.
    """
    if embedding_init is not None and embedding_init.shape != (
        config.vocab_size,
        config.embedding_dim,
    ):
        raise ValueError(
            f"embedding_init has shape {embedding_init.shape}, expected "
            f"({config.vocab_size}, {config.embedding_dim})"
        )
    initializer: Any = (
        "uniform" if embedding_init is None else keras.initializers.Constant(embedding_init)
    )
    tokens = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(
        config.vocab_size,
        config.embedding_dim,
        mask_zero=config.mask_zero,
        embeddings_initializer=initializer,
        trainable=config.train_embedding,
        name="embedding",
    )(tokens)
    x = keras.layers.SpatialDropout1D(config.spatial_dropout, name="spatial_dropout")(x)
    lstm = keras.layers.LSTM(
        config.lstm_units,
        dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout,
        name="lstm",
    )
    x = (
        keras.layers.Bidirectional(lstm, name="bidirectional")(x)
        if config.bidirectional
        else lstm(x)
    )
    probabilities = keras.layers.Dense(config.num_labels, activation="softmax", name="dense")(x)
    model = keras.Model(tokens, probabilities, name="sentistream_lstm")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
