"""The trainer's data preparation: --data specs, per-source stratified splits, sample weights.

No TensorFlow here: :mod:`sentistream.trainer.sources` is plain Python and scikit-learn.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sentistream.dataset import DatasetError
from sentistream.trainer.sources import (
    DataSource,
    Split,
    load_sources,
    pooled,
    sample_weights,
)


def _csv(path: Path, counts: dict[str, int]) -> Path:
    target = {"negative": "0", "neutral": "2", "positive": "4"}
    lines = [
        f'"{target[label]}","{label}{i}","","q","","{label} tweet {i}"\n'
        for label, n in counts.items()
        for i in range(n)
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("spec", "path", "weight"),
    [
        ("data/a.csv", "data/a.csv", 1.0),
        ("data/a.csv:0.5", "data/a.csv", 0.5),
        ("data/a.csv:2", "data/a.csv", 2.0),
        ("dir:with:colons/a.csv", "dir:with:colons/a.csv", 1.0),
    ],
)
def test_data_spec_is_a_path_with_an_optional_weight(spec: str, path: str, weight: float) -> None:
    source = DataSource.parse(spec)
    assert (source.path, source.weight) == (Path(path), weight)
    assert source.name == "a"


@pytest.mark.parametrize("spec", ["a.csv:0", "a.csv:-1"])
def test_a_weight_must_be_positive(spec: str) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        DataSource.parse(spec)


def test_each_source_is_split_on_its_own_stratified_and_seeded(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", {"negative": 500, "positive": 500})
    b = _csv(tmp_path / "b.csv", {"negative": 100, "neutral": 200, "positive": 100})
    classes = ["negative", "neutral", "positive"]
    split = Split(seed=3)
    sources = load_sources([DataSource(a), DataSource(b, 2.0)], classes, "auto", split, print)
    for source, n in zip(sources, (1000, 400), strict=True):
        sizes = {name: len(part.texts) for name, part in source.parts.items()}
        assert sizes == {"train": n * 8 // 10, "validation": n // 10, "test": n // 10}
        test = Counter(source.parts["test"].labels)
        everything = Counter(source.data.labels)
        assert {c: test[c] / (n // 10) for c in test} == {c: everything[c] / n for c in everything}
        every_text = [t for part in source.parts.values() for t in part.texts]
        assert sorted(every_text) == sorted(source.data.texts)  # a partition: no overlap
    again = load_sources([DataSource(a), DataSource(b, 2.0)], classes, "auto", split, print)
    assert again[1].parts["test"].texts == sources[1].parts["test"].texts


def test_two_class_training_drops_neutral_rows(tmp_path: Path) -> None:
    b = _csv(tmp_path / "b.csv", {"negative": 50, "neutral": 50, "positive": 50})
    (source,) = load_sources([DataSource(b)], ["negative", "positive"], "auto", Split(), print)
    assert len(source.data) == 100
    assert source.data.dropped == {"neutral": 50}


def test_limit_samples_each_source(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", {"negative": 500, "positive": 500})
    (source,) = load_sources(
        [DataSource(a)], ["negative", "positive"], "auto", Split(limit=200), print
    )
    assert sum(len(part.texts) for part in source.parts.values()) == 200


def test_two_files_with_one_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    a = _csv(tmp_path / "a.csv", {"negative": 10, "positive": 10})
    b = _csv(tmp_path / "x" / "a.csv", {"negative": 10, "positive": 10})
    with pytest.raises(DatasetError, match="share a name"):
        load_sources(
            [DataSource(a), DataSource(b)], ["negative", "positive"], "auto", Split(), print
        )


def test_weights_balance_classes_after_source_weights(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", {"negative": 400, "positive": 400})
    b = _csv(tmp_path / "b.csv", {"negative": 100, "neutral": 300, "positive": 200})
    classes = ["negative", "neutral", "positive"]
    sources = load_sources([DataSource(a, 0.5), DataSource(b)], classes, "auto", Split(), print)
    _, labels = pooled(sources, "train")
    weights = sample_weights(sources, "train", "balanced")
    assert weights.dtype == np.float32
    assert weights.mean() == pytest.approx(1.0)
    per_class = {c: weights[[label == c for label in labels]].sum() for c in classes}
    assert per_class["negative"] == pytest.approx(per_class["neutral"], rel=1e-5)
    assert per_class["positive"] == pytest.approx(per_class["neutral"], rel=1e-5)
    # within one class, a row of the half-weight source counts half as much
    n_a = len(sources[0].parts["train"].labels)
    negative_a = weights[:n_a][[label == "negative" for label in labels[:n_a]]]
    negative_b = weights[n_a:][[label == "negative" for label in labels[n_a:]]]
    assert negative_a[0] == pytest.approx(negative_b[0] / 2)

    plain = sample_weights(sources, "train", "none")
    assert set(np.round(plain / plain.min(), 5)) == {1.0, 2.0}


def test_preparing_data_loads_no_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sentistream.trainer.sources\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_balanced_per_source_evens_classes_inside_each_source(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", {"negative": 400, "positive": 400})
    b = _csv(tmp_path / "b.csv", {"negative": 100, "neutral": 300, "positive": 200})
    classes = ["negative", "neutral", "positive"]
    sources = load_sources([DataSource(a, 0.5), DataSource(b)], classes, "auto", Split(), print)
    weights = sample_weights(sources, "train", "balanced-per-source")
    assert weights.mean() == pytest.approx(1.0)
    n_a = len(sources[0].parts["train"].labels)
    for part, rows in ((sources[0], weights[:n_a]), (sources[1], weights[n_a:])):
        labels = part.parts["train"].labels
        totals = {c: rows[[label == c for label in labels]].sum() for c in set(labels)}
        assert len(set(np.round(list(totals.values()), 3))) == 1  # each class the same
    # the sources keep their relative size x weight: 0.5 x 640 rows vs 1 x 480 rows
    assert weights[:n_a].sum() / weights[n_a:].sum() == pytest.approx(0.5 * 640 / 480)
