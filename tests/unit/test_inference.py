"""Serving a model folder with ONNX Runtime: its checks, length buckets, batch encoding.

The folder is a tiny cleaning-v3 model built here (:mod:`tests.unit.tiny_model`), so these tests
do not depend on which model is shipped; ``test_the_shipped_model_labels_clear_cases`` is the
one that reads ``models/sentistream-lstm``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sentistream.inference import SentimentModel
from sentistream.manifest import ManifestError, sha256_file
from tests.unit.tiny_model import build_model_folder

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "sentistream-lstm"

TWEETS = [
    "I love this so much, best day ever",
    "worst service ever, my flight got cancelled and nobody helped",
    "ok",
    "just landed in a new city, the food here is amazing and the people are so kind",
    "hate mondays",
    "@bob thanks for the heart shaped cake, it was a work of art",
    "",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_folder(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def model(tiny: Path) -> SentimentModel:
    return SentimentModel.load(tiny, threads=1)


def test_the_shipped_model_labels_clear_cases() -> None:
    shipped = SentimentModel.load(SHIPPED, threads=1)
    labels = [p.label for p in shipped.predict(TWEETS[:2] + TWEETS[4:5])]
    assert labels == ["positive", "negative", "negative"]


def test_a_model_folder_labels_with_its_own_tokenizer(model: SentimentModel) -> None:
    labels = [p.label for p in model.predict([*TWEETS[:2], TWEETS[4], "ok", "battery at 41%"])]
    assert labels == ["positive", "negative", "negative", "neutral", "neutral"]


def test_encode_batch_is_encode_of_each_tweet(model: SentimentModel) -> None:
    assert model.encode_batch(TWEETS) == [model.encode(t) for t in TWEETS]
    assert model.encode_batch([]) == []
    assert model.encode("") == [1]


def test_probabilities_sum_to_one_in_label_order(model: SentimentModel) -> None:
    prediction = model.predict([TWEETS[0]])[0]
    assert list(prediction.probabilities) == list(model.labels)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_length_buckets_and_batch_padding_do_not_change_any_probability(
    model: SentimentModel,
) -> None:
    ids = [model.encode(t) for t in TWEETS * 5]
    one_call = model.predict_ids(ids)
    bucketed = model.predict_ids(ids, bucket_size=4)
    alone = np.vstack([model.predict_ids([row]) for row in ids])
    np.testing.assert_allclose(bucketed, one_call, atol=1e-6)
    np.testing.assert_allclose(alone, one_call, atol=1e-6)
    assert (one_call.argmax(axis=1) == alone.argmax(axis=1)).all()


def _copy(tmp_path: Path, source: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(source, folder)
    return folder


def _edit_manifest(folder: Path, section: str, key: str, value: object) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    data[section][key] = value
    (folder / "manifest.json").write_text(json.dumps(data))


def test_a_graph_input_unlike_the_manifest_is_refused(tmp_path: Path, tiny: Path) -> None:
    folder = _copy(tmp_path, tiny)
    _edit_manifest(folder, "onnx", "input_name", "tokens")
    with pytest.raises(ManifestError, match=r"graph inputs \['token_ids'\], manifest says"):
        SentimentModel.load(folder)


def test_a_label_count_unlike_the_output_is_refused(tmp_path: Path, tiny: Path) -> None:
    folder = _copy(tmp_path, tiny)
    data = json.loads((folder / "manifest.json").read_text())
    assert data["labels"] == ["negative", "neutral", "positive"]
    data["labels"] = ["negative", "positive"]
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"output shape \(1, 3\) .* expected \(1, 2\)"):
        SentimentModel.load(folder)


def test_a_swapped_onnx_file_is_refused(tmp_path: Path, tiny: Path) -> None:
    folder = _copy(tmp_path, tiny)
    with (folder / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    assert sha256_file(folder / "model.onnx") != sha256_file(tiny / "model.onnx")
    with pytest.raises(ManifestError, match="ONNX model was changed"):
        SentimentModel.load(folder)


def test_labels_come_from_the_manifest_order_not_the_corpus_targets(
    model: SentimentModel,
) -> None:
    # Notebook bug: it tested argmax == 4 (the corpus's "positive" target), which never holds
    # for a softmax over a few classes. The index is looked up in the manifest's labels.
    assert model.labels == ("negative", "neutral", "positive")
    assert model.to_prediction(np.array([0.1, 0.2, 0.7], dtype=np.float32)).label == "positive"
    assert model.to_prediction(np.array([0.2, 0.7, 0.1], dtype=np.float32)).label == "neutral"
    assert model.to_prediction(np.array([0.7, 0.2, 0.1], dtype=np.float32)).label == "negative"


def test_a_swapped_tokenizer_file_is_refused_saying_which(tmp_path: Path, tiny: Path) -> None:
    folder = _copy(tmp_path, tiny)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["model"]["vocab"]["zzq"] = len(data["model"]["vocab"])
    (folder / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"tokenizer\.json: sha256 .* tokenizer was changed"):
        SentimentModel.load(folder)
