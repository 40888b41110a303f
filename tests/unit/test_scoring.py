"""The evaluation figures: three-class macro recall, binary accuracy by p(pos) vs p(neg)."""

from __future__ import annotations

import numpy as np
import pytest

from sentistream.scoring import HEADLINE_KEYS, evaluate_probabilities, format_table

THREE = ["negative", "neutral", "positive"]
TWO = ["negative", "positive"]


def _p(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


def test_three_class_figures_by_hand() -> None:
    truth = ["negative", "negative", "neutral", "neutral", "positive", "positive"]
    p = _p(
        [
            [0.8, 0.1, 0.1],  # negative, right
            [0.3, 0.5, 0.2],  # neutral, wrong; p(neg) > p(pos): binary right
            [0.1, 0.8, 0.1],  # neutral, right
            [0.1, 0.3, 0.6],  # positive, wrong
            [0.1, 0.2, 0.7],  # positive, right
            [0.45, 0.1, 0.45 - 1e-3],  # negative, wrong; binary wrong
        ]
    )
    scores = evaluate_probabilities(truth, p, THREE)
    assert list(scores)[: len(HEADLINE_KEYS)] == list(HEADLINE_KEYS)
    assert scores["n"] == 6
    assert scores["accuracy"] == pytest.approx(3 / 6)
    # recall: negative 1/2, neutral 1/2, positive 1/2
    assert scores["macro_recall"] == pytest.approx(0.5)
    assert scores["binary_n"] == 4
    assert scores["binary_accuracy"] == pytest.approx(3 / 4)
    assert scores["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]


def test_two_class_file_has_no_macro_recall_and_a_three_class_model_can_still_say_neutral() -> None:
    truth = ["negative", "positive", "positive"]
    p = _p([[0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6]])
    scores = evaluate_probabilities(truth, p, THREE)
    assert scores["macro_recall"] is None
    assert scores["accuracy"] == pytest.approx(2 / 3)  # "neutral" is wrong for a labelled row
    assert scores["binary_accuracy"] == pytest.approx(1.0)  # decided by p(pos) vs p(neg)
    # macro F1 is over the classes the file has, not over neutral with no support
    assert scores["macro_f1"] == pytest.approx(np.mean([0.0, 1.0]))


def test_a_two_class_model_on_three_class_data_scores_zero_on_neutral() -> None:
    truth = ["negative", "neutral", "positive"]
    p = _p([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    scores = evaluate_probabilities(truth, p, TWO)
    assert scores["macro_recall"] == pytest.approx((1 + 0 + 1) / 3)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["binary_n"] == 2
    assert scores["binary_accuracy"] == 1.0


def test_label_order_comes_from_the_model_not_from_position() -> None:
    # The notebook checked argmax == 4; a model with labels in another order is read by name.
    truth = ["positive", "negative"]
    p = _p([[0.9, 0.1], [0.2, 0.8]])
    assert evaluate_probabilities(truth, p, ["positive", "negative"])["accuracy"] == 1.0
    assert evaluate_probabilities(truth, p, ["negative", "positive"])["accuracy"] == 0.0


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 labels but 1 rows"):
        evaluate_probabilities(["negative", "positive"], _p([[1.0, 0.0]]), TWO)


def test_table_has_one_row_per_file_and_a_dash_for_missing_figures() -> None:
    two = evaluate_probabilities(["negative"], _p([[0.9, 0.1]]), TWO)
    table = format_table({"a.csv": two}).splitlines()
    assert table[0].split() == ["data", *HEADLINE_KEYS]
    assert table[1].split()[:4] == ["a.csv", "1", "1.0000", "1.0000"]
    assert table[1].split()[4] == "-"


def test_what_a_consumer_gets_recall_per_class_label_shares_and_confusion() -> None:
    truth = ["negative", "negative", "neutral", "neutral", "neutral", "positive"]
    p = _p(
        [
            [0.8, 0.1, 0.1],  # negative → negative
            [0.2, 0.1, 0.7],  # negative → positive
            [0.1, 0.8, 0.1],  # neutral → neutral
            [0.6, 0.3, 0.1],  # neutral → negative
            [0.1, 0.3, 0.6],  # neutral → positive
            [0.1, 0.2, 0.7],  # positive → positive
        ]
    )
    scores = evaluate_probabilities(truth, p, THREE)
    assert scores["recall_per_class"] == pytest.approx(
        {"negative": 1 / 2, "neutral": 1 / 3, "positive": 1.0}
    )
    assert scores["true_share"] == pytest.approx(
        {"negative": 2 / 6, "neutral": 3 / 6, "positive": 1 / 6}
    )
    assert scores["predicted_share"] == pytest.approx(
        {"negative": 2 / 6, "neutral": 1 / 6, "positive": 3 / 6}
    )
    assert scores["confusion"] == {
        "labels": THREE,
        "rows_are": "true label",
        "matrix": [[1, 0, 1], [1, 1, 1], [0, 0, 1]],
    }
    assert sum(scores["predicted_share"].values()) == pytest.approx(1.0)


def test_a_class_the_file_lacks_has_no_recall_but_a_predicted_share() -> None:
    truth = ["negative", "positive"]
    p = _p([[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    scores = evaluate_probabilities(truth, p, THREE)
    assert scores["recall_per_class"] == {"negative": 0.0, "neutral": None, "positive": 1.0}
    assert scores["true_share"]["neutral"] == 0.0
    assert scores["predicted_share"]["neutral"] == pytest.approx(0.5)
    assert scores["confusion"]["matrix"] == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]
