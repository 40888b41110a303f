"""What a training run writes: the artifact folder (model, tokenizer, held-out tweets, report,
figures, manifest), from the records :func:`~sentistream.trainer.train.train` fills."""

from __future__ import annotations

import csv
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

from sentistream import __version__
from sentistream.manifest import (
    VOCAB_FILE,
    Manifest,
    SourceSection,
    TextSection,
    TrainingSection,
    VocabSection,
    sha256_file,
    utc_now,
)
from sentistream.scoring import HEADLINE_KEYS
from sentistream.text import TextConfig, Vocabulary
from sentistream.trainer.model import ModelConfig
from sentistream.trainer.sources import PreparedSource

if TYPE_CHECKING:
    from sentistream.trainer.train import TrainConfig

__all__ = [
    "CONFUSION_FILE",
    "CURVES_FILE",
    "HOLDOUT_FILE",
    "KERAS_FILE",
    "REPORT_FILE",
    "SHARES_FILE",
    "Fitted",
    "Outcome",
    "write_artifacts",
]

KERAS_FILE = "model.keras"
HOLDOUT_FILE = "holdout.jsonl"
REPORT_FILE = "report.json"
CURVES_FILE = "training-curves.png"
CONFUSION_FILE = "confusion-matrices.png"
SHARES_FILE = "label-shares.png"
_TARGET = {"negative": "0", "neutral": "2", "positive": "4"}


@dataclass(frozen=True)
class Fitted:
    model: keras.Model
    model_config: ModelConfig
    curves: dict[str, list[float]]
    glove: dict[str, Any] | None

    @property
    def epochs_run(self) -> int:
        return len(self.curves["loss"])


@dataclass(frozen=True)
class Outcome:
    """What a training run produced, for the files that record it."""

    sources: Sequence[PreparedSource]
    vocab: Vocabulary
    text_config: TextConfig
    fitted: Fitted
    metrics: dict[str, Any]
    """Per source (and SemEval file): the LSTM's test-split figures."""
    baseline: dict[str, Any]
    """The same for the TF-IDF baseline; empty when it was skipped."""
    duration: float


def write_artifacts(config: TrainConfig, run: Outcome, validation: dict[str, Any]) -> None:
    """The artifact folder: model, vocabulary, held-out tweets, report, figures, manifest."""
    sources, vocab, fitted, metrics = run.sources, run.vocab, run.fitted, run.metrics
    config.out.mkdir(parents=True, exist_ok=True)
    fitted.model.save(config.out / KERAS_FILE)
    (config.out / VOCAB_FILE).write_text(vocab.to_json(), encoding="utf-8")
    _write_holdout(config.out, sources, config.seed)
    report = {
        "classes": list(config.classes),
        "lstm": metrics,
        "tfidf_baseline": run.baseline,
        "validation": validation,
        "class_weight_power": config.class_weight_power,
        "curves": fitted.curves,
        "glove": fitted.glove,
    }
    (config.out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if config.plots:
        from sentistream.trainer.plots import (
            plot_confusion_matrices,
            plot_curves,
            plot_label_shares,
        )

        plot_curves(fitted.curves, config.out / CURVES_FILE)
        shown = [s.spec.name for s in sources]
        shown += [f"{name}/2016" for name in shown if f"{name}/2016" in metrics]
        panels = {f"LSTM: {name}": metrics[name] for name in shown}
        panels |= {f"TF-IDF: {name}": run.baseline[name] for name in shown if name in run.baseline}
        plot_confusion_matrices(panels, config.out / CONFUSION_FILE)
        plot_label_shares(panels, config.out / SHARES_FILE)
    _manifest(config, run).write(config.out)


def _write_holdout(out: Path, sources: Sequence[PreparedSource], seed: int) -> None:
    """The test rows: ``holdout.jsonl`` (shuffled across sources) and one CSV per source."""
    rows = [
        {"text": text, "label": label, "source": s.spec.name}
        for s in sources
        for text, label in zip(s.parts["test"].texts, s.parts["test"].labels, strict=True)
    ]
    random.Random(seed).shuffle(rows)
    with (out / HOLDOUT_FILE).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    for s in sources:
        test = s.parts["test"]
        with (out / f"test-{s.spec.name}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
            for text, label, query in zip(test.texts, test.labels, test.queries, strict=True):
                writer.writerow([_TARGET[label], "", "", query, "", text])


def _manifest(config: TrainConfig, run: Outcome) -> Manifest:
    headline = HEADLINE_KEYS
    return Manifest(
        name=config.name,
        version=utc_now().replace(":", "").replace("-", "")[:15],
        created_at=utc_now(),
        labels=list(config.classes),
        text=TextSection.of(run.text_config),
        vocab=VocabSection(sha256=sha256_file(config.out / VOCAB_FILE), size=run.vocab.size),
        keras_file=KERAS_FILE,
        training=TrainingSection(
            sources=[
                SourceSection(
                    file=s.spec.path.name,
                    sha256=s.data.sha256,
                    encoding=s.data.encoding,
                    weight=s.spec.weight,
                    rows=len(s.data),
                    split={split: len(part.texts) for split, part in s.parts.items()},
                )
                for s in run.sources
            ],
            seed=config.seed,
            epochs=run.fitted.epochs_run,
            batch_size=config.batch_size,
            class_weight=config.class_weight,
            glove=config.glove,
            hyperparameters=run.fitted.model_config.to_dict(),
            metrics={name: {k: m[k] for k in headline} for name, m in run.metrics.items()},
            baseline={name: {k: m[k] for k in headline} for name, m in run.baseline.items()},
            duration_seconds=round(run.duration, 1),
        ),
        versions={
            "sentistream": __version__,
            "tensorflow": _version("tensorflow"),
            "keras": keras.__version__,
            "python": sys.version.split()[0],
        },
    )


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
