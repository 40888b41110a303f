"""What each step of the text pipeline does, per source, measured with a fast linear model.

For every variant (cleaning v2, cleaning v3, v3 with one step switched off or changed, and v3
with a subword tokenizer) and every source, a TF-IDF (token uni- and bigrams, sublinear tf)
+ logistic regression (class-balanced) is fitted on the source's training split and scored on
its validation + test splits (the trainer's stratified, seeded split). The tokens are exactly
what a model of that variant would see: ``clean(text, steps)`` for word-level variants,
:meth:`TweetTokenizer.tokens` for subword ones (unknown pieces included).

    taskset -c 1 python tools/text_ablation.py --out /tmp/ablation.json \
        ../shared/data/sentiment140-100k/sentiment140-100k.csv \
        ../shared/data/semeval-2013-2016/semeval-2013-2016.csv

Prints a Markdown table per source; ``--only`` picks variants by name.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from sentistream.dataset import LABELS, load_labelled
from sentistream.scoring import evaluate_probabilities
from sentistream.text import Steps, TokenizerKind, TweetTokenizer, clean, legacy
from sentistream.trainer.sources import Split, split_source

V3 = Steps()
WORD_VARIANTS: dict[str, Steps | None] = {
    "v2 (legacy)": None,
    "v3": V3,
    "v3 -numbers": replace(V3, numbers=False),
    "v3 -allcaps": replace(V3, allcaps=False),
    "v3 -punctuation (! ? dropped)": replace(V3, punctuation=False),
    "v3 -elongation marker+cut": replace(V3, elongation=False),
    "v3 elongation cut to 1": replace(V3, elongation_keep=1),
    "v3 -hashtag marker": replace(V3, hashtags=False),
    "v3 +hashtag split at capitals": replace(V3, hashtag_split=True),
    "v3 +emails": replace(V3, emails=True),
    "v3 +nfkc": replace(V3, nfkc=True),
}
SUBWORD_VARIANTS: dict[str, tuple[TokenizerKind, int]] = {
    "v3 wordlevel 30k (vocab from train)": ("wordlevel", 30_000),
    "v3 bpe 8k": ("bpe", 8_000),
    "v3 bpe 16k": ("bpe", 16_000),
    "v3 bpe 30k": ("bpe", 30_000),
    "v3 unigram 8k": ("unigram", 8_000),
    "v3 unigram 16k": ("unigram", 16_000),
}


def _fit_score(
    train: tuple[list[str], list[str]],
    held: tuple[list[str], list[str]],
    tokens: Callable[[str], list[str]],
    classes: Sequence[str],
) -> dict[str, Any]:
    started = time.monotonic()
    vectorizer = TfidfVectorizer(
        analyzer=lambda text: _ngrams(tokens(text)),
        min_df=2,
        max_features=300_000,
        sublinear_tf=True,
    )
    x_train = vectorizer.fit_transform(train[0])
    y_train = np.asarray([classes.index(label) for label in train[1]])
    model = LogisticRegression(C=2.0, max_iter=3000, class_weight="balanced")
    model.fit(x_train, y_train)
    p = np.zeros((len(held[0]), len(classes)))
    p[:, model.classes_] = model.predict_proba(vectorizer.transform(held[0]))
    scores = evaluate_probabilities(held[1], p, classes)
    unknown = sum(tokens(t).count("[UNK]") for t in held[0][:2000])
    n_tokens = sum(len(tokens(t)) for t in held[0][:2000])
    return {
        "macro_recall": scores.get("macro_recall"),
        "accuracy": scores["accuracy"],
        "binary_accuracy": scores.get("binary_accuracy"),
        "tokens_per_tweet": n_tokens / min(2000, len(held[0])),
        "unk_share": unknown / max(n_tokens, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def _ngrams(tokens: list[str]) -> list[str]:
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def _tokens_of(name: str, train_texts: list[str]) -> Callable[[str], list[str]]:
    if name in SUBWORD_VARIANTS:
        kind, size = SUBWORD_VARIANTS[name]
        return TweetTokenizer.train(train_texts, size, kind=kind).tokens
    steps = WORD_VARIANTS[name]
    if steps is None:
        return legacy.tokenize
    return lambda text: clean(text, steps).split()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("data", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    if args.out is not None and args.out.is_file():
        results = json.loads(args.out.read_text())
    for path in args.data:
        data = load_labelled(path)
        classes = [c for c in LABELS if c in set(data.labels)]
        data = data.restricted(classes)
        parts = split_source(data, Split())
        train = (parts["train"].texts, parts["train"].labels)
        held = (
            parts["validation"].texts + parts["test"].texts,
            parts["validation"].labels + parts["test"].labels,
        )
        source = path.stem
        results.setdefault(source, {})
        for name in [*WORD_VARIANTS, *SUBWORD_VARIANTS]:
            if args.only and name not in args.only:
                continue
            figures = _fit_score(train, held, _tokens_of(name, train[0]), classes)
            results[source][name] = figures
            print(f"{source} | {name} | {json.dumps(figures)}", file=sys.stderr, flush=True)
            if args.out is not None:
                args.out.write_text(json.dumps(results, indent=2) + "\n")
    for source, rows in results.items():
        print(f"\n### {source}\n")
        print(
            "| variant | macro recall (3-class) | accuracy | pos/neg accuracy | tokens/tweet "
            "| unk share |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for name, f in rows.items():
            mr = "" if f["macro_recall"] is None else f"{f['macro_recall']:.4f}"
            ba = "" if f["binary_accuracy"] is None else f"{f['binary_accuracy']:.4f}"
            print(
                f"| {name} | {mr} | {f['accuracy']:.4f} | {ba} | {f['tokens_per_tweet']:.1f} "
                f"| {f['unk_share']:.4f} |"
            )


if __name__ == "__main__":
    main()
