"""End to end on real tweets: train one epoch on a slice, export, check parity, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentistream.cli import cli
from sentistream.dataset import load_sentiment140
from sentistream.manifest import load_verified

SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "sentiment140-100k"
    / "sentiment140-100k.csv"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SAMPLE.is_file(),
        reason=f"needs the Sentiment140 sample at {SAMPLE} (not shipped with the repo)",
    ),
]


def test_train_export_evaluate_on_a_slice_of_real_tweets(tmp_path: Path) -> None:
    runner = CliRunner()
    keras_dir, onnx_dir = tmp_path / "keras", tmp_path / "onnx"
    trained = runner.invoke(
        cli,
        [
            "train",
            "--data",
            str(SAMPLE),
            "--out",
            str(keras_dir),
            "--limit",
            "4000",
            "--epochs",
            "1",
            "--num-words",
            "3000",
            "--lstm-units",
            "32",
            "--embedding-dim",
            "32",
            "--batch-size",
            "64",
        ],
    )
    assert trained.exit_code == 0, trained.output
    manifest, _ = load_verified(keras_dir, need_onnx=False)
    assert manifest.training.split == {"train": 3200, "validation": 400, "test": 400}
    assert manifest.training.data_sha256 == load_sentiment140(SAMPLE).sha256
    assert manifest.training.rows == 4000
    assert set(manifest.training.metrics) >= {"accuracy", "per_class", "confusion_matrix"}
    assert sum(map(sum, manifest.training.metrics["confusion_matrix"]["matrix"])) == 400

    exported = runner.invoke(
        cli, ["export", "--model", str(keras_dir), "--out", str(onnx_dir), "--parity-limit", "400"]
    )
    assert exported.exit_code == 0, exported.output
    served, _ = load_verified(onnx_dir)
    assert served.onnx is not None
    assert served.onnx.lstm_op == "LSTM"
    assert served.onnx.parity["labels_equal"] is True
    assert served.onnx.parity["max_abs_diff_pad_to_longest"] <= 1e-5

    evaluated = runner.invoke(
        cli, ["evaluate", "--data", str(SAMPLE), "--model", str(onnx_dir), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    scores = json.loads(evaluated.output)
    assert scores["n"] == 100_000
    # One epoch on 3,200 tweets already beats chance on the whole sample.
    assert scores["accuracy"] > 0.6
    assert scores["model"]["sha256"] == served.onnx.sha256
