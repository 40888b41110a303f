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

Levers inside the family (each measured in the README's model card, kept or not):

* ``embedding_noise``: Gaussian noise on the word vectors while training (DataStories' 0.3);
* ``lstm_layers``: stacked LSTM layers (each bidirectional if ``bidirectional``), every layer
  but the last returning its whole sequence;
* ``pooling="attention"``: the last layer returns its whole sequence and a learned score per
  step, softmax over the tweet's *real* tokens only, averages it (:class:`AttentionPooling`).
  The mask is an explicit input computed from the token ids (:class:`TokenMask`), not Keras'
  implicit one, so the exporter's unmasked twin computes the same thing and tf2onnx turns it
  into plain ONNX ops.

Training with ``partial_labels`` (:func:`partial_label_crossentropy`): ``y_true`` is the
one-hot label followed by a 0/1 row of the classes the row's source can say. A row whose
source has every class gets the usual ``-log p_y``; a Sentiment140 row (negative/positive
only, from emoticons) gets ``-log(p_y / (p_neg + p_pos))``: it teaches which polarity, and
nothing about neutral, so two-class data stops teaching "never neutral".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import keras
import numpy as np
import numpy.typing as npt

__all__ = [
    "AttentionPooling",
    "ModelConfig",
    "TokenMask",
    "build_model",
    "masked_accuracy",
    "partial_label_crossentropy",
]

Pooling = Literal["last", "attention"]
_EPSILON = 1e-7


@keras.saving.register_keras_serializable(package="sentistream")
class TokenMask(keras.layers.Layer):  # type: ignore[misc]
    """``1.0`` where a token id is real (non-zero), ``0.0`` on padding: ``(batch, time)``."""

    def call(self, token_ids: Any) -> Any:
        return keras.ops.cast(keras.ops.not_equal(token_ids, 0), "float32")

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None


@keras.saving.register_keras_serializable(package="sentistream")
class AttentionPooling(keras.layers.Layer):  # type: ignore[misc]
    """Attention pooling over a sequence, restricted to the real tokens.

    ``score_t = tanh(h_t · w + b)``; ``a = softmax(score)`` over the steps where the token mask
    is 1 (the others get weight exactly 0); the output is ``sum_t a_t h_t``. Inputs:
    ``[sequence (batch, time, features), token_mask (batch, time)]``.
    """

    def build(self, input_shape: Any) -> None:
        features = int(input_shape[0][-1])
        self.w = self.add_weight(shape=(features, 1), initializer="glorot_uniform", name="w")
        self.b = self.add_weight(shape=(1,), initializer="zeros", name="b")

    def call(self, inputs: Any, mask: Any = None) -> Any:
        ops = keras.ops
        sequence, token_mask = inputs
        scores = ops.squeeze(ops.tanh(ops.matmul(sequence, self.w) + self.b), axis=-1)
        # tanh keeps every score in [-1, 1], so exp cannot overflow and the softmax needs no
        # max subtraction; padded steps get weight exactly 0.
        weights = ops.exp(scores) * token_mask
        weights = weights / ops.maximum(ops.sum(weights, axis=1, keepdims=True), _EPSILON)
        return ops.sum(sequence * ops.expand_dims(weights, -1), axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0][0], input_shape[0][-1])

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None


@keras.saving.register_keras_serializable(package="sentistream")  # type: ignore[untyped-decorator]
def partial_label_crossentropy(y_true: Any, y_pred: Any) -> Any:
    """``-log(p_y / sum of p over the classes the row's source can say)``.

    ``y_true`` is ``(batch, 2 x labels)``: the one-hot label, then the 0/1 class mask. A mask
    of all ones is plain categorical cross-entropy.
    """
    ops = keras.ops
    labels = ops.shape(y_pred)[-1]
    one_hot, can_say = y_true[:, :labels], y_true[:, labels:]
    p = ops.clip(y_pred, _EPSILON, 1.0)
    return ops.log(ops.sum(can_say * p, axis=-1)) - ops.log(ops.sum(one_hot * p, axis=-1))


@keras.saving.register_keras_serializable(package="sentistream")  # type: ignore[untyped-decorator]
def masked_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Accuracy among the classes the row's source can say (``y_true`` as above)."""
    ops = keras.ops
    labels = ops.shape(y_pred)[-1]
    one_hot, can_say = y_true[:, :labels], y_true[:, labels:]
    said = ops.argmax(y_pred * can_say, axis=-1)
    return ops.cast(ops.equal(said, ops.argmax(one_hot, axis=-1)), "float32")


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
    embedding_noise: float = 0.0
    """Standard deviation of Gaussian noise on the word vectors (training only)."""
    lstm_layers: int = 1
    pooling: Pooling = "attention"
    """``last``: the LSTM's state at each tweet's last token; ``attention``: see the module."""
    partial_labels: bool = False
    """Compile with :func:`partial_label_crossentropy` (``y_true`` carries the class mask)."""

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
    if config.lstm_layers < 1:
        raise ValueError(f"lstm_layers must be at least 1, got {config.lstm_layers}")
    tokens = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(
        config.vocab_size,
        config.embedding_dim,
        mask_zero=config.mask_zero,
        embeddings_initializer=initializer,
        trainable=config.train_embedding,
        name="embedding",
    )(tokens)
    if config.embedding_noise > 0:
        x = keras.layers.GaussianNoise(config.embedding_noise, name="embedding_noise")(x)
    x = keras.layers.SpatialDropout1D(config.spatial_dropout, name="spatial_dropout")(x)
    attention = config.pooling == "attention"
    for layer in range(config.lstm_layers):
        last = layer == config.lstm_layers - 1
        suffix = "" if layer == 0 else f"_{layer + 1}"
        lstm = keras.layers.LSTM(
            config.lstm_units,
            dropout=config.dropout,
            recurrent_dropout=config.recurrent_dropout,
            return_sequences=attention or not last,
            name=f"lstm{suffix}",
        )
        x = (
            keras.layers.Bidirectional(lstm, name=f"bidirectional{suffix}")(x)
            if config.bidirectional
            else lstm(x)
        )
    if attention:
        x = AttentionPooling(name="attention")([x, TokenMask(name="token_mask")(tokens)])
    probabilities = keras.layers.Dense(config.num_labels, activation="softmax", name="dense")(x)
    model = keras.Model(tokens, probabilities, name="sentistream_lstm")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=partial_label_crossentropy if config.partial_labels else "categorical_crossentropy",
        metrics=[
            keras.metrics.MeanMetricWrapper(masked_accuracy, name="accuracy")
            if config.partial_labels
            else "accuracy"
        ],
    )
    return model
