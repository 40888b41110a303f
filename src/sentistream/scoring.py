"""Classification metrics, computed by scikit-learn, in one JSON-ready shape.

The trainer reports these per data source on its held-out split (for the LSTM and for the
TF-IDF baseline), and ``sentistream evaluate`` on any labelled CSV, so the figures compare
directly. :func:`evaluate_probabilities` is the one place that turns a model's probabilities
into the figures the README and the issue tracker quote:

* ``accuracy`` over every row, and ``macro_f1`` over the classes the file has;
* ``macro_recall``: recall averaged over negative, neutral and positive (SemEval's official
  measure), only for files with neutral rows (``None`` otherwise); a two-class model scores 0
  on neutral, as it never says it;
* ``binary_accuracy`` over the rows labelled negative or positive, each decided by
  p(positive) vs p(negative) whatever the model says about neutral, and ``binary_n``;
* what a consumer of the label topic sees: ``recall_per_class`` (each scored class's recall,
  ``None`` for a class the file has no rows of), ``predicted_share`` beside ``true_share``
  (the fraction of rows given / truly of each class: a model that says neutral for 17 % of
  tweets where 48 % are neutral shows it here), and ``confusion`` (``labels``, ``rows_are``
  ``"true label"``, ``matrix``: counts, rows true, columns predicted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    recall_score,
)

__all__ = [
    "HEADLINE_KEYS",
    "evaluate_probabilities",
    "format_scores",
    "format_shares",
    "format_table",
    "score",
]

#: The figures every evaluation reports per file, in this order.
HEADLINE_KEYS = ("n", "accuracy", "macro_f1", "macro_recall", "binary_accuracy", "binary_n")
_ALL = ("negative", "neutral", "positive")


def score(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix."""
    indices = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    present = [i for i in indices if support[i] > 0] or indices
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean([f1[i] for i in present])),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion_matrix": {
            "labels": list(labels),
            "rows_are": "true label",
            "matrix": confusion_matrix(y_true, y_pred, labels=indices).tolist(),
        },
    }


def evaluate_probabilities(
    truth: Sequence[str],
    probabilities: npt.NDArray[np.floating[Any]],
    model_labels: Sequence[str],
) -> dict[str, Any]:
    """Score one file: ``truth`` holds class names, ``probabilities`` is ``rows x labels``.

    The classes scored are the model's plus any the file has (a two-class model on a file
    with neutral rows is scored on three, and gets neutral wrong every time).
    """
    if len(truth) != len(probabilities):
        raise ValueError(f"{len(truth)} labels but {len(probabilities)} rows of probabilities")
    classes = [name for name in _ALL if name in model_labels or name in truth]
    classes += [name for name in model_labels if name not in classes]
    index = {name: i for i, name in enumerate(classes)}
    y_true = [index[name] for name in truth]
    y_pred = [index[model_labels[int(i)]] for i in np.argmax(probabilities, axis=1)]
    result = score(y_true, y_pred, classes)
    has_neutral = "neutral" in truth
    result["macro_recall"] = (
        float(
            recall_score(
                y_true,
                y_pred,
                labels=[index[name] for name in _ALL],
                average="macro",
                zero_division=0,
            )
        )
        if has_neutral and all(name in index for name in _ALL)
        else None
    )
    result.update(_binary(truth, probabilities, model_labels))
    result.update(_label_shares(y_true, y_pred, classes))
    return {key: result[key] for key in HEADLINE_KEYS} | result


def _label_shares(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]
) -> dict[str, Any]:
    """Per class: recall, the share of rows predicted as it, its true share; the matrix."""
    n = max(len(y_true), 1)
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    return {
        "recall_per_class": {
            name: (float(matrix[i, i] / support[i]) if support[i] else None)
            for i, name in enumerate(classes)
        },
        "predicted_share": {name: float(predicted[i] / n) for i, name in enumerate(classes)},
        "true_share": {name: float(support[i] / n) for i, name in enumerate(classes)},
        "confusion": {
            "labels": list(classes),
            "rows_are": "true label",
            "matrix": matrix.tolist(),
        },
    }


def _binary(
    truth: Sequence[str],
    probabilities: npt.NDArray[np.floating[Any]],
    model_labels: Sequence[str],
) -> dict[str, Any]:
    if "negative" not in model_labels or "positive" not in model_labels:
        return {"binary_accuracy": None, "binary_n": 0}
    rows = [i for i, name in enumerate(truth) if name in ("negative", "positive")]
    if not rows:
        return {"binary_accuracy": None, "binary_n": 0}
    p = np.asarray(probabilities)[rows]
    says_positive = p[:, model_labels.index("positive")] > p[:, model_labels.index("negative")]
    is_positive = np.asarray([truth[i] == "positive" for i in rows])
    return {
        "binary_accuracy": float(np.mean(says_positive == is_positive)),
        "binary_n": len(rows),
    }


def _figure(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(results: dict[str, dict[str, Any]], first_column: str = "data") -> str:
    """One row per file (or source) of :data:`HEADLINE_KEYS`, aligned for a terminal."""
    header = [first_column, *HEADLINE_KEYS]
    rows = [
        [name, *(_figure(scores.get(key)) for key in HEADLINE_KEYS)]
        for name, scores in results.items()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def format_shares(results: dict[str, dict[str, Any]], first_column: str = "data") -> str:
    """One row per file: each class's recall, and its predicted share against its true share."""
    classes = list(_ALL)
    header = [first_column]
    header += [f"recall {c}" for c in classes] + [f"{c} predicted/true" for c in classes]
    rows = []
    for name, scores in results.items():
        recall = scores.get("recall_per_class", {})
        predicted = scores.get("predicted_share", {})
        true = scores.get("true_share", {})
        rows.append(
            [name]
            + [_figure(recall.get(c)) for c in classes]
            + [
                f"{predicted[c]:.3f}/{true[c]:.3f}" if c in predicted and c in true else "-"
                for c in classes
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            [row[0].ljust(widths[0])]
            + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        )
        for row in [header, *rows]
    )


def format_scores(scores: dict[str, Any]) -> str:
    """A short human-readable table of :func:`score`'s result."""
    labels: list[str] = scores["confusion_matrix"]["labels"]
    width = max(len(name) for name in labels) + 2
    lines = [
        f"n={scores['n']}  accuracy={scores['accuracy']:.4f}  macro F1={scores['macro_f1']:.4f}",
        f"{'':{width}}precision  recall     f1  support",
    ]
    for name in labels:
        c = scores["per_class"][name]
        lines.append(
            f"{name:{width}}{c['precision']:9.4f} {c['recall']:7.4f} {c['f1']:6.4f}"
            f" {c['support']:8d}"
        )
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append(f"{'':{width}}" + "".join(f"{name:>{width}}" for name in labels))
    for name, row in zip(labels, scores["confusion_matrix"]["matrix"], strict=True):
        lines.append(f"{name:{width}}" + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)
