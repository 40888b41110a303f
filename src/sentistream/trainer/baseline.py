"""The linear bar every LSTM is measured against: word + character n-gram TF-IDF, logistic
regression.

Fitted by scikit-learn with the same cleaning as the LSTM and scored on the same per-source
test splits. Two feature sets side by side, each with sublinear term frequency: word unigrams
and bigrams (``min_df`` 2), and character 2- to 5-grams inside word boundaries (``char_wb``,
which covers misspellings, elongations and hashtags the word vocabulary misses). The logistic
regression is class-balanced through the sample weights the caller passes (the trainer's
per-source balancing), so a rare class counts as much as a common one.

This is the stronger linear model the issue measured (SemEval alone: three-class macro recall
0.616 on the 2016-17 set), so beating it means something.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from sentistream.text import clean

__all__ = ["TfidfBaseline"]


class TfidfBaseline:
    def __init__(self, labels: Sequence[str], *, seed: int, c: float = 1.0) -> None:
        self.labels = list(labels)
        features = FeatureUnion(
            [
                (
                    "words",
                    TfidfVectorizer(
                        preprocessor=clean,
                        token_pattern=r"\S+",
                        ngram_range=(1, 2),
                        min_df=2,
                        max_features=200_000,
                        sublinear_tf=True,
                        dtype=np.float32,
                    ),
                ),
                (
                    "chars",
                    TfidfVectorizer(
                        preprocessor=clean,
                        analyzer="char_wb",
                        ngram_range=(2, 5),
                        min_df=3,
                        max_features=300_000,
                        sublinear_tf=True,
                        dtype=np.float32,
                    ),
                ),
            ]
        )
        self._pipeline = Pipeline(
            [
                ("tfidf", features),
                ("logreg", LogisticRegression(C=c, max_iter=1000, random_state=seed)),
            ]
        )

    def fit(
        self, texts: Sequence[str], labels: Sequence[str], weights: npt.NDArray[np.float32]
    ) -> TfidfBaseline:
        y = np.asarray([self.labels.index(name) for name in labels])
        self._pipeline.fit(list(texts), y, logreg__sample_weight=weights)
        return self

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """``rows x labels`` in :attr:`labels` order."""
        p: npt.NDArray[np.float64] = self._pipeline.predict_proba(list(texts))
        classes: Any = self._pipeline.classes_
        out = np.zeros((len(texts), len(self.labels)))
        out[:, np.asarray(classes)] = p
        return out
