"""Classification metrics, computed by scikit-learn, in one JSON-ready shape.

The trainer reports these on its held-out split and ``sentistream evaluate`` on any labelled
CSV, so the two figures can be compared directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

__all__ = ["format_scores", "score"]


def score(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix."""
    indices = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(sum(f1) / len(indices)),
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
