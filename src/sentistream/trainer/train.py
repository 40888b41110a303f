"""``sentistream train``: Sentiment140 CSV → a Keras artifact folder.

The folder holds ``model.keras``, ``vocab.json``, ``manifest.json`` and ``holdout.jsonl`` (the
held-out test tweets, which ``sentistream export`` uses for its parity check). Everything is
seeded; the split is stratified train / validation / test on the whole file (the notebook
trained on 1 % of it).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split

from sentistream import __version__
from sentistream.dataset import LABELS, load_sentiment140
from sentistream.manifest import (
    VOCAB_FILE,
    Manifest,
    TextSection,
    TrainingSection,
    VocabSection,
    sha256_file,
    utc_now,
)
from sentistream.scoring import score
from sentistream.text import TextConfig, Vocabulary, pad, tokenize
from sentistream.trainer.model import ModelConfig, build_model

__all__ = ["HOLDOUT_FILE", "KERAS_FILE", "TrainConfig", "TrainReport", "train"]

KERAS_FILE = "model.keras"
HOLDOUT_FILE = "holdout.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    out: Path
    num_words: int = 20_000
    maxlen: int = 40
    epochs: int = 4
    batch_size: int = 128
    seed: int = 42
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    limit: int | None = None
    """Train on a stratified sample of this many rows (for smoke tests), else on all of them."""
    patience: int = 1
    """Stop after this many epochs without a better validation loss (best weights are kept)."""
    name: str = "sentiment140-lstm"
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`ModelConfig` fields (embedding_dim, lstm_units, ...)."""


@dataclass(frozen=True)
class TrainReport:
    out: Path
    metrics: dict[str, Any]
    split: dict[str, int]
    epochs_run: int
    duration_seconds: float


def _split(
    texts: Sequence[str], labels: Sequence[int], config: TrainConfig
) -> dict[str, tuple[list[str], list[int]]]:
    held_out = config.validation_fraction + config.test_fraction
    x_train, x_rest, y_train, y_rest = train_test_split(
        list(texts), list(labels), test_size=held_out, stratify=labels, random_state=config.seed
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest,
        y_rest,
        test_size=config.test_fraction / held_out,
        stratify=y_rest,
        random_state=config.seed,
    )
    return {"train": (x_train, y_train), "validation": (x_val, y_val), "test": (x_test, y_test)}


def _one_hot(labels: Sequence[int]) -> npt.NDArray[np.float32]:
    one_hot: npt.NDArray[np.float32] = np.eye(len(LABELS), dtype=np.float32)[np.asarray(labels)]
    return one_hot


def train(config: TrainConfig, log: Callable[[str], None] = print) -> TrainReport:
    started = time.monotonic()
    keras.utils.set_random_seed(config.seed)
    data = load_sentiment140(config.data)
    log(
        f"read {len(data)} tweets from {config.data} {data.counts()}, "
        f"dropped {data.neutral_dropped} neutral"
    )
    texts, labels = data.texts, data.labels
    if config.limit is not None and config.limit < len(texts):
        texts, _, labels, _ = train_test_split(
            texts, labels, train_size=config.limit, stratify=labels, random_state=config.seed
        )
    splits = _split(texts, labels, config)
    split_sizes = {name: len(part[0]) for name, part in splits.items()}
    log(f"split {split_sizes} (stratified, seed {config.seed})")

    text_config = TextConfig(maxlen=config.maxlen, num_words=config.num_words)
    tokenized = {name: [tokenize(t) for t in part[0]] for name, part in splits.items()}
    vocab = Vocabulary.fit(tokenized["train"], config.num_words)
    log(f"vocabulary: {vocab.size} ids (num_words {config.num_words}), maxlen {config.maxlen}")

    def encode(name: str) -> np.ndarray:
        ids = [
            vocab.encode(tokens, config.maxlen, text_config.truncating)
            for tokens in tokenized[name]
        ]
        return pad(ids, config.maxlen, text_config.padding)

    x = {name: encode(name) for name in splits}
    y = {name: _one_hot(part[1]) for name, part in splits.items()}

    model_config = ModelConfig(vocab_size=vocab.size, num_labels=len(LABELS), **config.model)
    model = build_model(model_config)
    history = model.fit(
        x["train"],
        y["train"],
        validation_data=(x["validation"], y["validation"]),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=1 if sys.stdout.isatty() else 2,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.patience, restore_best_weights=True
            )
        ],
    )
    epochs_run = len(history.history["loss"])

    probabilities = model.predict(x["test"], batch_size=512, verbose=0)
    metrics = score(splits["test"][1], probabilities.argmax(axis=1).tolist(), LABELS)
    metrics["validation_loss_by_epoch"] = [float(v) for v in history.history["val_loss"]]
    metrics["validation_accuracy_by_epoch"] = [float(v) for v in history.history["val_accuracy"]]
    duration = time.monotonic() - started

    config.out.mkdir(parents=True, exist_ok=True)
    model.save(config.out / KERAS_FILE)
    (config.out / VOCAB_FILE).write_text(vocab.to_json(), encoding="utf-8")
    with (config.out / HOLDOUT_FILE).open("w", encoding="utf-8") as handle:
        for text, label in zip(*splits["test"], strict=True):
            handle.write(json.dumps({"text": text, "label": LABELS[label]}) + "\n")
    manifest = Manifest(
        name=config.name,
        version=utc_now().replace(":", "").replace("-", "")[:15],
        created_at=utc_now(),
        labels=list(LABELS),
        text=TextSection.of(text_config),
        vocab=VocabSection(sha256=sha256_file(config.out / VOCAB_FILE), size=vocab.size),
        keras_file=KERAS_FILE,
        training=TrainingSection(
            data_file=config.data.name,
            data_sha256=data.sha256,
            rows=len(texts),
            split=split_sizes,
            seed=config.seed,
            epochs=epochs_run,
            batch_size=config.batch_size,
            hyperparameters=model_config.to_dict(),
            metrics=metrics,
            duration_seconds=round(duration, 1),
        ),
        versions={
            "sentistream": __version__,
            "tensorflow": _version("tensorflow"),
            "keras": keras.__version__,
            "python": sys.version.split()[0],
        },
    )
    manifest.write(config.out)
    return TrainReport(
        out=config.out,
        metrics=metrics,
        split=split_sizes,
        epochs_run=epochs_run,
        duration_seconds=duration,
    )


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
