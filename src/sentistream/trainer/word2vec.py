"""Word vectors trained on this run's own training tweets (gensim word2vec), as an embedding
start to compare with GloVe 6B: GloVe knows English from Wikipedia and news, these know how
the tweets here use words (emoticon words, ``user``/``url`` markers, slang)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentistream.text import Vocabulary, tokenize
from sentistream.trainer.glove import GloveError, GloveInit

__all__ = ["word2vec_matrix"]


def word2vec_matrix(
    vocab: Vocabulary, texts: Sequence[str], *, seed: int, dim: int, epochs: int = 5
) -> GloveInit:
    """Skip-gram word2vec (window 5, ``min_count`` 2) over ``texts``, one row per vocab word."""
    try:
        from gensim.models import Word2Vec
    except ModuleNotFoundError as exc:
        raise GloveError(
            "--word-vectors word2vec needs gensim (pip install gensim); it is not in the "
            "train extra, as it started the network worse than GloVe (docs/model-card.md)"
        ) from exc

    sentences = [tokenize(text) for text in texts]
    w2v = Word2Vec(
        sentences,
        vector_size=dim,
        window=5,
        min_count=2,
        sg=1,
        workers=1,
        seed=seed,
        epochs=epochs,
    )
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.05, 0.05, size=(vocab.size, dim)).astype(np.float32)
    found = 0
    for index, word in enumerate(vocab.words, start=2):
        if word in w2v.wv:
            vector = w2v.wv[word]
            matrix[index] = vector
            found += 1
    return GloveInit(matrix=matrix, found=found, words=len(vocab.words))
