"""The simple baseline every LSTM is measured against: TF-IDF + logistic regression.

Fitted by scikit-learn on the same training rows, with the same sample weights and the same
cleaning as the LSTM, and scored on the same per-source test splits. Word unigrams and
bigrams, sublinear term frequency: the usual strong linear text classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sentistream.text import clean

__all__ = ["TfidfBaseline"]


class TfidfBaseline:
    def __init__(self, labels: Sequence[str], *, seed: int) -> None:
        self.labels = list(labels)
        self._pipeline = Pipeline(
            [
                (
                    "tfidf",
                    TfidfVectorizer(
                        preprocessor=clean,
                        token_pattern=r"\S+",
                        ngram_range=(1, 2),
                        min_df=2,
                        max_features=200_000,
                        sublinear_tf=True,
                    ),
                ),
                ("logreg", LogisticRegression(C=2.0, max_iter=2000, random_state=seed)),
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
