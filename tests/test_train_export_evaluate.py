"""End to end on real tweets: train on slices of both shared sources, export, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentistream.cli import cli
from sentistream.dataset import load_labelled
from sentistream.manifest import load_verified
from sentistream.scoring import HEADLINE_KEYS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE = DATA / "sentiment140-100k" / "sentiment140-100k.csv"
SEMEVAL = DATA / "semeval-2013-2016" / "semeval-2013-2016.csv"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SAMPLE.is_file() and SEMEVAL.is_file()),
        reason=f"needs the shared data sets {SAMPLE} and {SEMEVAL} (not shipped with the repo)",
    ),
]


def test_train_export_evaluate_on_slices_of_real_tweets(tmp_path: Path) -> None:
    runner = CliRunner()
    keras_dir, onnx_dir = tmp_path / "keras", tmp_path / "onnx"
    trained = runner.invoke(
        cli,
        [
            "train",
            "--data",
            f"{SAMPLE}:0.5",
            "--data",
            str(SEMEVAL),
            "--out",
            str(keras_dir),
            "--limit",
            "2000",
            "--epochs",
            "1",
            "--num-words",
            "5000",
            "--lstm-units",
            "16",
            "--batch-size",
            "64",
        ],
    )
    assert trained.exit_code == 0, trained.output
    manifest, _ = load_verified(keras_dir, need_onnx=False)
    assert manifest.labels == ["negative", "neutral", "positive"]
    sources = {s.file: s for s in manifest.training.sources}
    assert set(sources) == {SAMPLE.name, SEMEVAL.name}
    assert sources[SAMPLE.name].encoding == "latin-1"
    assert sources[SEMEVAL.name].encoding == "utf-8"
    assert sources[SAMPLE.name].weight == 0.5
    assert sources[SEMEVAL.name].sha256 == load_labelled(SEMEVAL).sha256
    for source in sources.values():
        assert source.split == {"train": 1600, "validation": 200, "test": 200}
    assert manifest.training.glove is True
    assert manifest.training.hyperparameters["bidirectional"] is True
    # every source scored on its own test split, by the LSTM and by the baseline
    for figures in (manifest.training.metrics, manifest.training.baseline):
        assert {SAMPLE.stem, SEMEVAL.stem} <= figures.keys()
        assert figures[SAMPLE.stem]["n"] == figures[SEMEVAL.stem]["n"] == 200
        assert figures[SAMPLE.stem]["macro_recall"] is None  # no neutral rows
        assert 0.0 <= figures[SEMEVAL.stem]["macro_recall"] <= 1.0
    for name in ("report.json", "training-curves.png", "confusion-matrices.png"):
        assert (keras_dir / name).stat().st_size > 0
    assert (keras_dir / "training-curves.png").read_bytes()[:4] == b"\x89PNG"
    semeval_test = keras_dir / f"test-{SEMEVAL.stem}.csv"
    assert len(load_labelled(semeval_test)) == 200

    exported = runner.invoke(
        cli, ["export", "--model", str(keras_dir), "--out", str(onnx_dir), "--parity-limit", "400"]
    )
    assert exported.exit_code == 0, exported.output
    served, _ = load_verified(onnx_dir)
    assert served.onnx is not None
    assert served.onnx.lstm_op == "LSTM"
    assert served.onnx.parity["labels_equal"] is True
    assert served.onnx.parity["max_abs_diff_pad_to_longest"] <= 1e-5

    sample_test = keras_dir / f"test-{SAMPLE.stem}.csv"
    evaluated = runner.invoke(
        cli,
        [
            "evaluate",
            "--data",
            str(semeval_test),
            "--data",
            str(sample_test),
            "--model",
            str(onnx_dir),
            "--json",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    document = json.loads(evaluated.output)
    assert document["model"]["sha256"] == served.onnx.sha256
    files = document["files"]
    assert set(files) == {str(semeval_test), str(sample_test)}
    # ONNX Runtime on the exported test split gives the trainer's Keras figures
    for path, stem in ((semeval_test, SEMEVAL.stem), (sample_test, SAMPLE.stem)):
        for key in HEADLINE_KEYS:
            expected = manifest.training.metrics[stem][key]
            if expected is None:
                assert files[str(path)][key] is None
            else:
                assert files[str(path)][key] == pytest.approx(expected, abs=1e-9), key

    single = runner.invoke(
        cli, ["evaluate", "--data", str(semeval_test), "--model", str(onnx_dir), "--json"]
    )
    assert single.exit_code == 0, single.output
    top = json.loads(single.output)
    assert {key: top[key] for key in HEADLINE_KEYS} == {
        key: files[str(semeval_test)][key] for key in HEADLINE_KEYS
    }
