"""``sentistream train``: labelled CSV files → a Keras artifact folder, scored per source.

Each ``--data`` file is a *source* with a weight. Every source is split train / validation /
test on its own (stratified, seeded), so each is scored on tweets it held out; the training
and validation parts are pooled. A row's sample weight is its source's weight times its
class's balancing weight, so a small human-labelled source is not drowned by a large
emoticon-labelled one, and a rare class counts as much as a common one.

The folder holds ``model.keras``, ``tokenizer.json``, ``manifest.json``, ``holdout.jsonl`` (the
held-out test tweets of every source, which ``sentistream export`` uses for its parity
check), ``test-<source>.csv`` (the same tweets in the CSV layout, for ``sentistream
evaluate``), ``report.json`` (LSTM and TF-IDF baseline on every source) and the PNG figures.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import numpy.typing as npt

from sentistream.dataset import LABELS, DatasetError, Encoding
from sentistream.scoring import (
    evaluate_probabilities,
    format_shares,
    format_table,
)
from sentistream.text import TextConfig, TweetTokenizer, Vocabulary
from sentistream.trainer.artifacts import (
    HOLDOUT_FILE,
    KERAS_FILE,
    REPORT_FILE,
    Fitted,
    Outcome,
    write_artifacts,
)
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

WordVectors = Literal["glove", "word2vec"]
#: Sub-sources (the CSV's ``query`` column) with at least this many test rows get a line too.
_MIN_QUERY_ROWS = 100
_YEAR = re.compile(r"(?<!\d)(19|20)\d\d(?!\d)")


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
    partial_labels: bool = True
    """Rows of a source that lacks a class (Sentiment140: no neutral) are scored only among
    the classes it has: ``-log(p_y / (p_neg + p_pos))``, so they teach polarity and nothing
    against neutral (:func:`~sentistream.trainer.model.partial_label_crossentropy`)."""
    class_weight_power: float = 0.5
    """With ``balanced-per-source``: each class's balancing weight is raised to this power
    (1: fully balanced, 0.5: square root, 0: no class balancing; source weights unchanged)."""
    word_vectors: WordVectors = "glove"
    """The embedding's start when ``glove`` is on: ``glove`` (GloVe 6B 50-d) or ``word2vec``
    (trained with gensim on this run's training tweets)."""


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


def class_masks(
    sources: Sequence[PreparedSource], split: str, classes: Sequence[str]
) -> npt.NDArray[np.float32]:
    """Per row of ``split`` (pooled in source order): 1 for each class its source can say.

    A source "can say" the classes that occur in its training part: Sentiment140's rows get
    ``[1, 0, 1]`` (negative, neutral, positive), SemEval's ``[1, 1, 1]``.
    """
    rows = []
    for source in sources:
        present = set(source.parts["train"].labels)
        mask = np.asarray([c in present for c in classes], dtype=np.float32)
        rows.append(np.tile(mask, (len(source.parts[split].labels), 1)))
    masks: npt.NDArray[np.float32] = (
        np.concatenate(rows) if rows else np.zeros((0, len(classes)), np.float32)
    )
    return masks


def training_weights(
    sources: Sequence[PreparedSource], split: str, class_weight: ClassWeight, power: float = 1.0
) -> npt.NDArray[np.float32]:
    """:func:`~sentistream.trainer.sources.sample_weights`, with ``balanced-per-source``'s
    class weights raised to ``power``; each source still weighs its weight times its rows."""
    if class_weight != "balanced-per-source" or power == 1.0:
        return sample_weights(sources, split, class_weight)
    parts = []
    for source in sources:
        labels = source.parts[split].labels
        if not labels:
            continue
        counts = Counter(labels)
        per_class = {c: (len(labels) / (len(counts) * n)) ** power for c, n in counts.items()}
        weights = np.asarray([per_class[label] for label in labels], dtype=np.float64)
        parts.append(weights * source.spec.weight * len(labels) / weights.sum())
    pooled_weights = np.concatenate(parts) if parts else np.zeros(0)
    scaled: npt.NDArray[np.float32] = (pooled_weights / pooled_weights.mean()).astype(np.float32)
    return scaled


def training_targets(
    sources: Sequence[PreparedSource], split: str, classes: Sequence[str], partial: bool
) -> npt.NDArray[np.float32]:
    """``y`` for ``model.fit``: one-hot labels, followed by :func:`class_masks` if ``partial``."""
    _, labels = pooled(sources, split)
    one_hot = _one_hot(labels, classes)
    if not partial:
        return one_hot
    targets: npt.NDArray[np.float32] = np.concatenate(
        [one_hot, class_masks(sources, split, classes)], axis=1
    )
    return targets


def _per_source(
    sources: Sequence[PreparedSource],
    probabilities: Callable[[list[str]], npt.NDArray[Any]],
    classes: Sequence[str],
    split: str = "test",
) -> dict[str, Any]:
    """Figures on each source's ``split``, plus its larger sub-sources (``query`` column) and
    each year of them (``semeval2016train`` ... ``semeval2016test`` → ``<source>/2016``, the
    latest year standing in for "recent" tweets)."""
    results: dict[str, Any] = {}
    for source in sources:
        part = source.parts[split]
        p = probabilities(part.texts)
        results[source.spec.name] = evaluate_probabilities(part.labels, p, classes)
        groups: dict[str, list[int]] = {}
        for i, query in enumerate(part.queries):
            groups.setdefault(query, []).append(i)
            year = _YEAR.search(query)
            if year:
                groups.setdefault(year.group(0), []).append(i)
        if len(set(part.queries)) <= 1:
            continue
        for group, rows in sorted(groups.items()):
            if len(rows) < _MIN_QUERY_ROWS:
                continue
            results[f"{source.spec.name}/{group}"] = evaluate_probabilities(
                [part.labels[i] for i in rows], p[rows], classes
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
    train_texts, _ = pooled(sources, "train")
    vocab = TweetTokenizer.train(train_texts, config.num_words, kind="wordlevel")
    log(f"vocabulary: {vocab.size} ids (num_words {config.num_words}), maxlen {config.maxlen}")

    def encode(texts: Sequence[str]) -> npt.NDArray[np.int32]:
        return encode_for_training(texts, vocab, text_config)

    fitted = _fit(config, sources, vocab, encode, log)

    def lstm_probabilities(texts: list[str]) -> npt.NDArray[Any]:
        return np.asarray(fitted.model.predict(encode(texts), batch_size=512, verbose=0))

    metrics = _per_source(sources, lstm_probabilities, classes)
    validation = _per_source(sources, lstm_probabilities, classes, "validation")
    baseline: dict[str, Any] = {}
    baseline_validation: dict[str, Any] = {}
    if config.baseline:
        baseline, baseline_validation = _baselines(config, sources, log)
    duration = time.monotonic() - started
    run = Outcome(sources, vocab, text_config, fitted, metrics, baseline, duration)
    write_artifacts(config, run, {"lstm": validation, "tfidf_baseline": baseline_validation})
    log(f"test split per source, LSTM:\n{format_table(metrics, 'source')}")
    log(f"labels a consumer gets, LSTM:\n{format_shares(metrics, 'source')}")
    if baseline:
        log(f"test split per source, TF-IDF baseline:\n{format_table(baseline, 'source')}")
        log(f"labels a consumer gets, TF-IDF baseline:\n{format_shares(baseline, 'source')}")
    return TrainReport(
        out=config.out,
        metrics=metrics,
        baseline=baseline,
        split=split_sizes,
        epochs_run=fitted.epochs_run,
        duration_seconds=duration,
    )


def _baselines(
    config: TrainConfig, sources: Sequence[PreparedSource], log: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The TF-IDF bar per source, on the test and the validation split: the better (on
    validation, by macro recall, else pos/neg accuracy) of a fit on every training row and,
    when some source lacks a class, a fit on the sources with every class alone (two-class
    rows teach a linear model "never neutral")."""
    from sentistream.trainer.baseline import TfidfBaseline

    classes = list(config.classes)
    fits: dict[str, list[PreparedSource]] = {"all rows": list(sources)}
    complete = [s for s in sources if set(s.parts["train"].labels) == set(classes)]
    if complete and len(complete) < len(sources):
        fits["sources with every class"] = complete
    test: dict[str, dict[str, Any]] = {}
    validation: dict[str, dict[str, Any]] = {}
    for fit_name, chosen in fits.items():
        log(f"fitting the word + character TF-IDF baseline on {fit_name}")
        texts, labels = pooled(chosen, "train")
        tfidf = TfidfBaseline(classes, seed=config.seed).fit(
            texts, labels, sample_weights(chosen, "train", config.class_weight)
        )
        test[fit_name] = _per_source(sources, tfidf.probabilities, classes)
        validation[fit_name] = _per_source(sources, tfidf.probabilities, classes, "validation")

    def strength(scores: dict[str, Any] | None) -> tuple[float, float]:
        if scores is None:
            return (-1.0, -1.0)
        return (scores["macro_recall"] or 0.0, scores["binary_accuracy"] or 0.0)

    best_test: dict[str, Any] = {}
    best_validation: dict[str, Any] = {}
    for name in test["all rows"]:
        fit_name = max(test, key=lambda f: strength(validation[f].get(name)))
        best_test[name] = {**test[fit_name][name], "fitted_on": fit_name}
    for name in validation["all rows"]:
        fit_name = max(validation, key=lambda f: strength(validation[f][name]))
        best_validation[name] = {**validation[fit_name][name], "fitted_on": fit_name}
    return best_test, best_validation


def _fit(
    config: TrainConfig,
    sources: Sequence[PreparedSource],
    vocab: Vocabulary,
    encode: Callable[[Sequence[str]], npt.NDArray[np.int32]],
    log: Callable[[str], None],
) -> Fitted:
    """Build the network (GloVe start if asked) and fit it with early stopping."""
    classes = list(config.classes)
    model_config = ModelConfig(
        vocab_size=vocab.size,
        num_labels=len(classes),
        **{"partial_labels": config.partial_labels, **config.model},
    )
    embedding_init, glove_report = None, None
    train_texts, _ = pooled(sources, "train")
    if config.glove and config.word_vectors == "word2vec":
        from sentistream.trainer.word2vec import word2vec_matrix

        vectors = word2vec_matrix(
            vocab, train_texts, seed=config.seed, dim=model_config.embedding_dim
        )
        embedding_init = vectors.matrix
        glove_report = {
            "vectors": "word2vec",
            "words_with_vector": vectors.found,
            "coverage": round(vectors.coverage, 4),
        }
        log(f"word2vec on the training tweets: {vectors.found} of {vectors.words} words")
    elif config.glove:
        from sentistream.trainer.glove import glove_matrix

        glove = glove_matrix(vocab, seed=config.seed, dim=model_config.embedding_dim)
        embedding_init = glove.matrix
        glove_report = {"words_with_vector": glove.found, "coverage": round(glove.coverage, 4)}
        log(f"GloVe 6B 50d: {glove.found} of {glove.words} words have a vector")
    model = build_model(model_config, embedding_init)
    val_texts, _ = pooled(sources, "validation")
    partial = model_config.partial_labels
    history = model.fit(
        encode(train_texts),
        training_targets(sources, "train", classes, partial),
        sample_weight=training_weights(
            sources, "train", config.class_weight, config.class_weight_power
        ),
        validation_data=(
            encode(val_texts),
            training_targets(sources, "validation", classes, partial),
            training_weights(sources, "validation", config.class_weight, config.class_weight_power),
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
    return Fitted(model, model_config, curves, glove_report)
