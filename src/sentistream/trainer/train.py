"""``sentistream train``: labelled CSV files → a Keras artifact folder, scored per source.

Each ``--data`` file is a *source* with a weight. Every source is split train / validation /
test on its own (stratified, seeded), so each is scored on tweets it held out; the training
and validation parts are pooled. A row's sample weight is its source's weight times its
class's balancing weight, so a small human-labelled source is not drowned by a large
emoticon-labelled one, and a rare class counts as much as a common one.

The folder holds ``model.keras``, ``vocab.json``, ``manifest.json``, ``holdout.jsonl`` (the
held-out test tweets of every source, which ``sentistream export`` uses for its parity
check), ``test-<source>.csv`` (the same tweets in the CSV layout, for ``sentistream
evaluate``), ``report.json`` (LSTM and TF-IDF baseline on every source) and the PNG figures.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt

from sentistream import __version__
from sentistream.dataset import LABELS, DatasetError, Encoding
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
from sentistream.scoring import HEADLINE_KEYS, evaluate_probabilities, format_table
from sentistream.text import TextConfig, Vocabulary, tokenize
from sentistream.trainer.model import ModelConfig, build_model
from sentistream.trainer.sources import (
    ClassWeight,
    DataSource,
    PreparedSource,
    Split,
    encode_for_training,
    load_sources,
    pooled,
    sample_weights,
)

__all__ = [
    "HOLDOUT_FILE",
    "KERAS_FILE",
    "REPORT_FILE",
    "DataSource",
    "TrainConfig",
    "TrainReport",
    "train",
]

KERAS_FILE = "model.keras"
HOLDOUT_FILE = "holdout.jsonl"
REPORT_FILE = "report.json"
CURVES_FILE = "training-curves.png"
CONFUSION_FILE = "confusion-matrices.png"
_TARGET = {"negative": "0", "neutral": "2", "positive": "4"}
#: Sub-sources (the CSV's ``query`` column) with at least this many test rows get a line too.
_MIN_QUERY_ROWS = 100


@dataclass(frozen=True)
class TrainConfig:
    sources: tuple[DataSource, ...]
    out: Path
    classes: tuple[str, ...] = LABELS
    encoding: Encoding = "auto"
    num_words: int = 30_000
    maxlen: int = 40
    epochs: int = 8
    batch_size: int = 128
    seed: int = 42
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    limit: int | None = None
    """Use a stratified sample of at most this many rows of each source (for smoke tests)."""
    patience: int = 2
    """Stop after this many epochs without a better validation loss (best weights are kept)."""
    class_weight: ClassWeight = "balanced-per-source"
    glove: bool = True
    baseline: bool = True
    plots: bool = True
    name: str = "sentistream-lstm"
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`ModelConfig` fields (embedding_dim, lstm_units, ...)."""


@dataclass(frozen=True)
class TrainReport:
    out: Path
    metrics: dict[str, Any]
    """LSTM figures per source (test split)."""
    baseline: dict[str, Any]
    """TF-IDF + logistic regression figures per source (same test split), if fitted."""
    split: dict[str, int]
    epochs_run: int
    duration_seconds: float


def _one_hot(labels: Sequence[str], classes: Sequence[str]) -> npt.NDArray[np.float32]:
    index = [classes.index(label) for label in labels]
    one_hot: npt.NDArray[np.float32] = np.eye(len(classes), dtype=np.float32)[index]
    return one_hot


def _per_source(
    sources: Sequence[PreparedSource],
    probabilities: Callable[[list[str]], npt.NDArray[Any]],
    classes: Sequence[str],
) -> dict[str, Any]:
    """Figures on each source's test split, plus its larger sub-sources (``query`` column)."""
    results: dict[str, Any] = {}
    for source in sources:
        test = source.parts["test"]
        p = probabilities(test.texts)
        results[source.spec.name] = evaluate_probabilities(test.labels, p, classes)
        queries = Counter(test.queries)
        if len(queries) > 1:
            for query, count in sorted(queries.items()):
                if count < _MIN_QUERY_ROWS:
                    continue
                rows = [i for i, q in enumerate(test.queries) if q == query]
                results[f"{source.spec.name}/{query}"] = evaluate_probabilities(
                    [test.labels[i] for i in rows], p[rows], classes
                )
    return results


def train(config: TrainConfig, log: Callable[[str], None] = print) -> TrainReport:
    started = time.monotonic()
    if not config.sources:
        raise DatasetError("no --data file given")
    keras.utils.set_random_seed(config.seed)
    classes = list(config.classes)
    sources = load_sources(
        config.sources,
        config.classes,
        config.encoding,
        Split(config.validation_fraction, config.test_fraction, config.seed, config.limit),
        log,
    )
    split_sizes = {
        split: sum(len(s.parts[split].texts) for s in sources)
        for split in ("train", "validation", "test")
    }
    log(f"split per source, pooled: {split_sizes} (stratified, seed {config.seed})")
    text_config = TextConfig(maxlen=config.maxlen, num_words=config.num_words)
    train_texts, train_labels = pooled(sources, "train")
    vocab = Vocabulary.fit((tokenize(t) for t in train_texts), config.num_words)
    log(f"vocabulary: {vocab.size} ids (num_words {config.num_words}), maxlen {config.maxlen}")

    def encode(texts: Sequence[str]) -> npt.NDArray[np.int32]:
        return encode_for_training(texts, vocab, text_config)

    fitted = _fit(config, sources, vocab, encode, log)

    def lstm_probabilities(texts: list[str]) -> npt.NDArray[Any]:
        return np.asarray(fitted.model.predict(encode(texts), batch_size=512, verbose=0))

    metrics = _per_source(sources, lstm_probabilities, classes)
    baseline: dict[str, Any] = {}
    if config.baseline:
        from sentistream.trainer.baseline import TfidfBaseline

        log("fitting the TF-IDF + logistic regression baseline on the same training rows")
        tfidf = TfidfBaseline(classes, seed=config.seed).fit(
            train_texts, train_labels, sample_weights(sources, "train", config.class_weight)
        )
        baseline = _per_source(sources, tfidf.probabilities, classes)
    duration = time.monotonic() - started
    _write(config, _Outcome(sources, vocab, text_config, fitted, metrics, baseline, duration))
    log(f"test split per source, LSTM:\n{format_table(metrics, 'source')}")
    if baseline:
        log(f"test split per source, TF-IDF baseline:\n{format_table(baseline, 'source')}")
    return TrainReport(
        out=config.out,
        metrics=metrics,
        baseline=baseline,
        split=split_sizes,
        epochs_run=fitted.epochs_run,
        duration_seconds=duration,
    )


@dataclass(frozen=True)
class _Fitted:
    model: keras.Model
    model_config: ModelConfig
    curves: dict[str, list[float]]
    glove: dict[str, Any] | None

    @property
    def epochs_run(self) -> int:
        return len(self.curves["loss"])


def _fit(
    config: TrainConfig,
    sources: Sequence[PreparedSource],
    vocab: Vocabulary,
    encode: Callable[[Sequence[str]], npt.NDArray[np.int32]],
    log: Callable[[str], None],
) -> _Fitted:
    """Build the network (GloVe start if asked) and fit it with early stopping."""
    classes = list(config.classes)
    model_config = ModelConfig(vocab_size=vocab.size, num_labels=len(classes), **config.model)
    embedding_init, glove_report = None, None
    if config.glove:
        from sentistream.trainer.glove import glove_matrix

        glove = glove_matrix(vocab, seed=config.seed, dim=model_config.embedding_dim)
        embedding_init = glove.matrix
        glove_report = {"words_with_vector": glove.found, "coverage": round(glove.coverage, 4)}
        log(f"GloVe 6B 50d: {glove.found} of {glove.words} words have a vector")
    model = build_model(model_config, embedding_init)
    train_texts, train_labels = pooled(sources, "train")
    val_texts, val_labels = pooled(sources, "validation")
    history = model.fit(
        encode(train_texts),
        _one_hot(train_labels, classes),
        sample_weight=sample_weights(sources, "train", config.class_weight),
        validation_data=(
            encode(val_texts),
            _one_hot(val_labels, classes),
            sample_weights(sources, "validation", config.class_weight),
        ),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=1 if sys.stdout.isatty() else 2,
        callbacks=[
            # A validation loss that stops falling first cuts the step size (often worth
            # another epoch of progress), then stops training with the best weights kept.
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.3, patience=0, min_lr=1e-5, verbose=0
            ),
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.patience, restore_best_weights=True
            ),
        ],
    )
    curves = {key: [float(v) for v in values] for key, values in history.history.items()}
    return _Fitted(model, model_config, curves, glove_report)


@dataclass(frozen=True)
class _Outcome:
    """What a training run produced, for the files that record it."""

    sources: Sequence[PreparedSource]
    vocab: Vocabulary
    text_config: TextConfig
    fitted: _Fitted
    metrics: dict[str, Any]
    """Per source (and SemEval file): the LSTM's test-split figures."""
    baseline: dict[str, Any]
    """The same for the TF-IDF baseline; empty when it was skipped."""
    duration: float


def _write(config: TrainConfig, run: _Outcome) -> None:
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
        "curves": fitted.curves,
        "glove": fitted.glove,
    }
    (config.out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if config.plots:
        from sentistream.trainer.plots import plot_confusion_matrices, plot_curves

        plot_curves(fitted.curves, config.out / CURVES_FILE)
        plot_confusion_matrices(
            {s.spec.name: metrics[s.spec.name] for s in sources}, config.out / CONFUSION_FILE
        )
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
    import csv

    for s in sources:
        test = s.parts["test"]
        with (out / f"test-{s.spec.name}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
            for text, label, query in zip(test.texts, test.labels, test.queries, strict=True):
                writer.writerow([_TARGET[label], "", "", query, "", text])


def _manifest(config: TrainConfig, run: _Outcome) -> Manifest:
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
