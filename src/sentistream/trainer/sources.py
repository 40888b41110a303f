"""The trainer's data, before any TensorFlow: sources, per-source splits and sample weights.

Each ``--data`` file is a *source* with a weight. Every source is split train / validation /
test on its own (stratified by class, seeded), so each is scored on tweets it held out. A row's
sample weight is its source's weight times its class's balancing weight, scaled so the mean row
weighs 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split

from sentistream.dataset import DatasetError, Encoding, LabelledTweets, load_labelled
from sentistream.text import TextConfig, TweetTokenizer, pad

__all__ = [
    "ClassWeight",
    "DataSource",
    "Part",
    "PreparedSource",
    "Split",
    "encode_for_training",
    "load_sources",
    "pooled",
    "sample_weights",
]

ClassWeight = Literal["balanced-per-source", "balanced", "none"]


@dataclass(frozen=True)
class DataSource:
    """One ``--data`` file and how much each of its rows counts (``PATH`` or ``PATH:WEIGHT``)."""

    path: Path
    weight: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        path, _, weight = spec.rpartition(":")
        if path and weight:
            try:
                value = float(weight)
            except ValueError:
                return cls(Path(spec))
            if not value > 0:
                raise ValueError(f"{spec}: the weight after ':' must be positive")
            return cls(Path(path), value)
        return cls(Path(spec))

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Split:
    """How every source is cut: fractions held out for validation and test, seed, row cap."""

    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42
    limit: int | None = None
    """Use a stratified sample of at most this many rows of each source (for smoke tests)."""


@dataclass
class Part:
    """One source's rows in one split."""

    texts: list[str]
    labels: list[str]
    queries: list[str]


@dataclass
class PreparedSource:
    spec: DataSource
    data: LabelledTweets
    parts: dict[str, Part]


def split_source(data: LabelledTweets, config: Split) -> dict[str, Part]:
    """Stratified, seeded train / validation / test parts of one source."""
    rows = list(range(len(data)))
    labels = data.labels
    if config.limit is not None and config.limit < len(rows):
        rows, _ = train_test_split(
            rows, train_size=config.limit, stratify=labels, random_state=config.seed
        )
    held_out = config.validation_fraction + config.test_fraction
    strata = [labels[i] for i in rows]
    train_rows, rest = train_test_split(
        rows, test_size=held_out, stratify=strata, random_state=config.seed
    )
    val_rows, test_rows = train_test_split(
        rest,
        test_size=config.test_fraction / held_out,
        stratify=[labels[i] for i in rest],
        random_state=config.seed,
    )

    def part(indices: Sequence[int]) -> Part:
        return Part(
            [data.texts[i] for i in indices],
            [labels[i] for i in indices],
            [data.queries[i] for i in indices],
        )

    return {"train": part(train_rows), "validation": part(val_rows), "test": part(test_rows)}


def load_sources(
    specs: Sequence[DataSource],
    classes: Sequence[str],
    encoding: Encoding,
    split: Split,
    log: Callable[[str], None],
) -> list[PreparedSource]:
    """Read every file (only the rows of ``classes``) and split each on its own."""
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise DatasetError(f"two --data files share a name ({names}); rename one")
    sources = []
    for spec in specs:
        data = load_labelled(spec.path, encoding).restricted(classes)
        dropped = f", dropped {data.dropped}" if data.dropped else ""
        log(
            f"{spec.name}: {len(data)} tweets {data.counts()} ({data.encoding}, "
            f"weight {spec.weight}){dropped}"
        )
        sources.append(PreparedSource(spec, data, split_source(data, split)))
    return sources


def sample_weights(
    sources: Sequence[PreparedSource], split: str, class_weight: ClassWeight
) -> npt.NDArray[np.float32]:
    """Per-row loss weights on ``split``, scaled to a mean of 1.

    * ``balanced-per-source``: inside each source every class weighs the same in total, and
      the source as a whole weighs its weight times its rows. A source whose negatives are
      rare (SemEval's) then teaches negatives as strongly as neutrals, whatever other sources
      hold.
    * ``balanced``: every class weighs the same in total over the pooled rows, after the
      source weights.
    * ``none``: the source weight alone.
    """
    parts: list[npt.NDArray[np.float64]] = []
    for source in sources:
        labels = source.parts[split].labels
        weights = np.full(len(labels), source.spec.weight, dtype=np.float64)
        if class_weight == "balanced-per-source" and labels:
            counts = Counter(labels)
            per_class = {c: len(labels) / (len(counts) * n) for c, n in counts.items()}
            weights *= np.asarray([per_class[label] for label in labels])
        parts.append(weights)
    weights = np.concatenate(parts) if parts else np.zeros(0)
    if class_weight == "balanced":
        pooled_labels = [label for s in sources for label in s.parts[split].labels]
        totals: dict[str, float] = {}
        for label, weight in zip(pooled_labels, weights, strict=True):
            totals[label] = totals.get(label, 0.0) + float(weight)
        balance = {c: float(weights.sum()) / (len(totals) * t) for c, t in totals.items()}
        weights = weights * np.asarray([balance[label] for label in pooled_labels])
    scaled: npt.NDArray[np.float32] = (weights / weights.mean()).astype(np.float32)
    return scaled


def pooled(sources: Sequence[PreparedSource], split: str) -> tuple[list[str], list[str]]:
    texts = [t for s in sources for t in s.parts[split].texts]
    labels = [label for s in sources for label in s.parts[split].labels]
    return texts, labels


def encode_for_training(
    texts: Sequence[str], tokenizer: TweetTokenizer, config: TextConfig
) -> npt.NDArray[np.int32]:
    """Token ids as the network is fitted on them: the worker's own encoding, padded to maxlen.

    The worker runs the same :meth:`TweetTokenizer.encode_batch` (of the ``tokenizer.json``
    written beside the model) and pads each micro-batch only to its longest tweet (never
    beyond ``maxlen``); with the masked model and post-padding that is the same input
    (``tests/unit/test_text.py`` checks both paths against each other).
    """
    return pad(tokenizer.encode_batch(texts, config), config.maxlen, config.padding)
