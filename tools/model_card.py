"""Print the model card's tables (Markdown) from a `make train` run folder.

    python tools/model_card.py runs/shipped > runs/shipped/model-card.md

Reads RUN/keras/report.json (LSTM and TF-IDF baseline per source, from the trainer),
RUN/keras/manifest.json, and RUN/evaluate-float.json / RUN/evaluate-int8.json (ONNX Runtime
on the same test splits and the demo tweets, from `sentistream evaluate --json`). Every figure
in the README's model card comes from here, so none is typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


_KEYS = ("accuracy", "macro_f1", "macro_recall", "binary_accuracy")


def _per_source(report: dict[str, Any], recipe: dict[str, Any], sub_sources: bool) -> list[str]:
    """One row per source (or per sub-source: the CSV's query column) of the test split."""
    header = "| test split | n |"
    rule = "|---|---:|"
    for key in ("accuracy", "macro F1", "macro recall (3 classes)", "pos/neg accuracy"):
        header += f" {key}: LSTM | baseline |" + (" notebook |" if recipe else "")
        rule += "---:|---:|" + ("---:|" if recipe else "")
    lines = [header + " LSTM ahead of the baseline |", rule + ":---:|"]
    for source, lstm in report["lstm"].items():
        if ("/" in source) != sub_sources:
            continue
        base = report["tfidf_baseline"].get(source, {})
        old = recipe.get(f"test-{source}.csv", {})
        ahead = all(lstm[k] is None or base.get(k) is None or lstm[k] > base[k] for k in _KEYS)
        cells = [source, str(lstm["n"])]
        for key in _KEYS:
            cells += [_f(lstm[key]), _f(base.get(key))] + ([_f(old.get(key))] if recipe else [])
        cells.append("yes" if ahead else "**no**")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _onnx(run: Path) -> list[str]:
    lines = [
        "| data | n | float accuracy | float macro recall | float pos/neg accuracy | "
        "int8 accuracy | int8 macro recall | int8 pos/neg accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    runs = {
        kind: json.loads((run / f"evaluate-{kind}.json").read_text(encoding="utf-8"))["files"]
        for kind in ("float", "int8")
    }
    for path, scores in runs["float"].items():
        int8 = runs["int8"][path]
        cells = [Path(path).name, str(scores["n"])]
        cells += [_f(scores[k]) for k in ("accuracy", "macro_recall", "binary_accuracy")]
        cells += [_f(int8[k]) for k in ("accuracy", "macro_recall", "binary_accuracy")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _training(manifest: dict[str, Any], report: dict[str, Any]) -> list[str]:
    training = manifest["training"]
    curves = report["curves"]
    sources = ", ".join(
        f"{s['file']} ({s['rows']} rows, {s['encoding']}, weight {s['weight']})"
        for s in training["sources"]
    )
    glove = report.get("glove") or {}
    return [
        f"- sources: {sources}",
        f"- classes: {', '.join(manifest['labels'])}; class weight: {training['class_weight']}",
        f"- network: {json.dumps(training['hyperparameters'])}",
        f"- GloVe start: {training['glove']}"
        + (
            f" ({glove['words_with_vector']} words, {glove['coverage']:.1%} of the vocabulary)"
            if glove
            else ""
        ),
        f"- epochs run: {training['epochs']} (batch {training['batch_size']}); "
        f"validation loss per epoch: {', '.join(f'{v:.4f}' for v in curves['val_loss'])}; "
        f"validation accuracy: {', '.join(f'{v:.4f}' for v in curves['val_accuracy'])}",
        f"- training time (train command, this machine): {training['duration_seconds']:.0f} s",
    ]


def main(run: Path) -> None:
    report = json.loads((run / "keras" / "report.json").read_text(encoding="utf-8"))
    manifest = json.loads((run / "keras" / "manifest.json").read_text(encoding="utf-8"))
    recipe_file = run / "notebook-recipe.json"
    recipe = json.loads(recipe_file.read_text()) if recipe_file.is_file() else {}
    out = [
        "### Test split of every source: LSTM, TF-IDF baseline"
        + (", notebook's recipe" if recipe else ""),
        "",
        *_per_source(report, recipe, sub_sources=False),
        "",
        "### The same split by SemEval file (the CSV's query column; small samples)",
        "",
        *_per_source(report, {}, sub_sources=True),
    ]
    if (run / "evaluate-float.json").is_file():
        out += ["", "### Served models (ONNX Runtime) on the same splits", "", *_onnx(run)]
    out += ["", "### Training run", "", *_training(manifest, report)]
    print("\n".join(out))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/shipped"))
