"""The pair loss: a two-class source's rows teach polarity, never "not neutral".

On a row whose source cannot say neutral (Sentiment140: emoticon labels, negative/positive
only) the loss is ``-log(p_y / (p_neg + p_pos))``; on a row of a source with every class it is
the usual ``-log p_y``. The class mask rides in ``y_true`` beside the one-hot label.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sentistream.trainer.sources import DataSource, Split, load_sources

CLASSES = ["negative", "neutral", "positive"]


def _csv(path: Path, counts: dict[str, int]) -> Path:
    target = {"negative": "0", "neutral": "2", "positive": "4"}
    lines = [
        f'"{target[label]}","{label}{i}","","q","","{label} tweet {i}"\n'
        for label, n in counts.items()
        for i in range(n)
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _loss(y_true: list[list[int]], y_pred: list[list[float]]) -> np.ndarray:
    from sentistream.trainer.model import partial_label_crossentropy

    return np.asarray(
        partial_label_crossentropy(
            np.asarray(y_true, dtype=np.float32), np.asarray(y_pred, dtype=np.float32)
        )
    )


def test_a_two_class_row_is_scored_among_its_own_classes_only() -> None:
    p = [[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]]
    two_class_positive = [0, 0, 1, 1, 0, 1]
    three_class_positive = [0, 0, 1, 1, 1, 1]
    loss = _loss([two_class_positive, three_class_positive], p)
    assert loss[0] == pytest.approx(-math.log(0.5 / 0.7), rel=1e-5)
    assert loss[1] == pytest.approx(-math.log(0.5), rel=1e-5)  # plain cross-entropy


def test_neutral_probability_costs_a_two_class_row_nothing() -> None:
    """Moving mass between neutral and the other classes in proportion leaves the loss as it
    is: the row says nothing about neutral."""
    row = [1, 0, 0, 1, 0, 1]
    little_neutral = _loss([row], [[0.6, 0.1, 0.3]])[0]
    much_neutral = _loss([row], [[0.2, 0.7, 0.1]])[0]
    assert little_neutral == pytest.approx(much_neutral, rel=1e-5)
    assert little_neutral == pytest.approx(-math.log(2 / 3), rel=1e-5)


def test_masked_accuracy_decides_among_the_row_s_classes() -> None:
    from sentistream.trainer.model import masked_accuracy

    y_true = np.asarray([[0, 0, 1, 1, 0, 1], [0, 0, 1, 1, 1, 1]], dtype=np.float32)
    y_pred = np.asarray([[0.1, 0.6, 0.3], [0.1, 0.6, 0.3]], dtype=np.float32)
    assert np.asarray(masked_accuracy(y_true, y_pred)).tolist() == [1.0, 0.0]


def test_targets_carry_each_source_s_class_mask(tmp_path: Path) -> None:
    from sentistream.trainer.train import class_masks, training_targets

    two = _csv(tmp_path / "two.csv", {"negative": 50, "positive": 50})
    three = _csv(tmp_path / "three.csv", {"negative": 30, "neutral": 40, "positive": 30})
    sources = load_sources(
        [DataSource(two, 0.5), DataSource(three)], CLASSES, "auto", Split(), lambda _: None
    )
    masks = class_masks(sources, "train", CLASSES)
    n_two = len(sources[0].parts["train"].labels)
    assert masks.shape == (n_two + len(sources[1].parts["train"].labels), 3)
    assert (masks[:n_two] == [1, 0, 1]).all()
    assert (masks[n_two:] == [1, 1, 1]).all()
    partial = training_targets(sources, "validation", CLASSES, partial=True)
    plain = training_targets(sources, "validation", CLASSES, partial=False)
    assert partial.shape[1] == 6
    assert plain.shape[1] == 3
    assert (partial[:, :3] == plain).all()


def test_a_model_compiled_with_the_pair_loss_trains_and_reports_accuracy() -> None:
    from sentistream.trainer.model import ModelConfig, build_model

    model = build_model(
        ModelConfig(vocab_size=20, embedding_dim=4, lstm_units=3, partial_labels=True)
    )
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, size=(32, 5)).astype(np.int32)
    y = np.concatenate(
        [np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)], np.ones((32, 3), np.float32)],
        axis=1,
    )
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert set(history.history) >= {"loss", "accuracy"}
    assert np.isfinite(history.history["loss"][0])


def test_class_weight_power_softens_balancing_inside_each_source(tmp_path: Path) -> None:
    from sentistream.trainer.sources import sample_weights
    from sentistream.trainer.train import training_weights

    two = _csv(tmp_path / "two.csv", {"negative": 50, "positive": 50})
    three = _csv(tmp_path / "three.csv", {"negative": 20, "neutral": 50, "positive": 30})
    sources = load_sources(
        [DataSource(two, 0.5), DataSource(three)], CLASSES, "auto", Split(), lambda _: None
    )
    n_two = len(sources[0].parts["train"].labels)
    labels = sources[1].parts["train"].labels
    balanced = sample_weights(sources, "train", "balanced-per-source")
    assert np.allclose(training_weights(sources, "train", "balanced-per-source", 1.0), balanced)
    none = training_weights(sources, "train", "balanced-per-source", 0.0)
    assert np.allclose(none, sample_weights(sources, "train", "none"))
    half = training_weights(sources, "train", "balanced-per-source", 0.5)[n_two:]
    negative = half[[label == "negative" for label in labels]][0]
    neutral = half[[label == "neutral" for label in labels]][0]
    assert negative / neutral == pytest.approx((50 / 20) ** 0.5, rel=1e-5)
    # each source keeps its weight x rows
    full_half = training_weights(sources, "train", "balanced-per-source", 0.5)
    assert full_half[:n_two].sum() / full_half[n_two:].sum() == pytest.approx(
        0.5 * n_two / len(labels), rel=1e-5
    )
