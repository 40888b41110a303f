"""PNG figures of a training run: the loss/accuracy curves and a confusion matrix per source.

matplotlib (``train`` extra) draws them off-screen; the README's model card embeds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_confusion_matrices", "plot_curves", "plot_label_shares"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Mapping[str, Sequence[float]], path: Path) -> Path:
    """Training and validation loss and accuracy per epoch (the best epoch marked)."""
    plt = _pyplot()
    epochs = range(1, len(history["loss"]) + 1)
    best = int(min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)) + 1
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    for axis, metric, title in (
        (axes[0], "loss", "loss (weighted)"),
        (axes[1], "accuracy", "accuracy"),
    ):
        axis.plot(epochs, history[metric], "o-", label="training")
        axis.plot(epochs, history[f"val_{metric}"], "o-", label="validation")
        axis.axvline(best, color="grey", linestyle=":", label=f"kept: epoch {best}")
        axis.set_xlabel("epoch")
        axis.set_title(title)
        axis.set_xticks(list(epochs))
        axis.legend()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_confusion_matrices(results: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """One confusion matrix per source (rows: true class, columns: predicted), row-normalised;
    three to a row of the figure."""
    import numpy as np

    plt = _pyplot()
    columns = min(len(results), 3)
    rows = -(-len(results) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.8 * rows), constrained_layout=True, squeeze=False
    )
    for axis in axes.flat[len(results) :]:
        axis.set_visible(False)
    for axis, (source, scores) in zip(axes.flat, results.items(), strict=False):
        labels = scores["confusion_matrix"]["labels"]
        counts = np.asarray(scores["confusion_matrix"]["matrix"], dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (row, column), share in np.ndenumerate(shares):
            axis.text(
                column,
                row,
                f"{share:.2f}\n({int(counts[row, column])})",
                ha="center",
                va="center",
                color="white" if share > 0.6 else "black",
                fontsize=8,
            )
        axis.set_xticks(range(len(labels)), labels, rotation=30)
        axis.set_yticks(range(len(labels)), labels)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(f"{source}\naccuracy {scores['accuracy']:.3f}, n={scores['n']}", fontsize=9)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_label_shares(results: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Per source: the share of each label predicted beside its true share (grouped bars)."""
    import numpy as np

    plt = _pyplot()
    columns = min(len(results), 3)
    rows = -(-len(results) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns, 3.2 * rows), constrained_layout=True, squeeze=False
    )
    for axis in axes.flat[len(results) :]:
        axis.set_visible(False)
    for axis, (source, scores) in zip(axes.flat, results.items(), strict=False):
        labels = list(scores["true_share"])
        where = np.arange(len(labels))
        true = [scores["true_share"][c] for c in labels]
        predicted = [scores["predicted_share"][c] for c in labels]
        axis.bar(where - 0.2, true, 0.4, label="true", color="#999999")
        axis.bar(where + 0.2, predicted, 0.4, label="predicted", color="#1f77b4")
        for x, value in zip(where + 0.2, predicted, strict=True):
            axis.text(x, value + 0.01, f"{value:.2f}", ha="center", fontsize=7)
        axis.set_xticks(where, labels)
        axis.set_ylim(0, 1)
        axis.set_title(source, fontsize=9)
        axis.legend(fontsize=7)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
