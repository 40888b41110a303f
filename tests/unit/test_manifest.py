"""The manifest contract: a model folder whose files disagree with it is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentistream.manifest import (
    Manifest,
    ManifestError,
    OnnxSection,
    SourceSection,
    TextSection,
    TrainingSection,
    VocabSection,
    load_verified,
    sha256_file,
)
from sentistream.text import TextConfig, TweetTokenizer


def make_folder(tmp_path: Path) -> Path:
    vocab = TweetTokenizer.from_words(["good", "bad"])
    vocab.save(tmp_path / "tokenizer.json")
    (tmp_path / "model.onnx").write_bytes(b"not really onnx, hashes only")
    Manifest(
        name="m",
        version="1",
        created_at="2026-11-29T00:00:00+00:00",
        labels=["negative", "positive"],
        text=TextSection.of(TextConfig(maxlen=10, num_words=100)),
        vocab=VocabSection(sha256=sha256_file(tmp_path / "tokenizer.json"), size=vocab.size),
        onnx=OnnxSection(
            file="model.onnx",
            sha256=sha256_file(tmp_path / "model.onnx"),
            opset=17,
            input_name="token_ids",
            input_dtype="int32",
            output_name="probabilities",
            lstm_op="LSTM",
            variable_length=True,
            parity={},
        ),
        training=TrainingSection(
            sources=[
                SourceSection(
                    file="d.csv",
                    sha256="0" * 64,
                    encoding="utf-8",
                    weight=1.0,
                    rows=2,
                    split={"train": 2},
                )
            ],
            seed=1,
            epochs=1,
            batch_size=2,
            class_weight="balanced",
            glove=False,
            hyperparameters={},
            metrics={},
            baseline={},
            duration_seconds=1.0,
        ),
    ).write(tmp_path)
    return tmp_path


def test_a_consistent_folder_loads(tmp_path: Path) -> None:
    manifest, vocab = load_verified(make_folder(tmp_path))
    assert manifest.labels == ["negative", "positive"]
    assert manifest.text.config() == TextConfig(maxlen=10, num_words=100)
    assert vocab.words == ("good", "bad")


def test_changed_onnx_file_is_refused_by_name(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ManifestError, match=r"model.onnx: sha256 .* ONNX model was changed"):
        load_verified(folder)


def test_changed_vocabulary_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    TweetTokenizer.from_words(["good", "bad", "ugly"]).save(folder / "tokenizer.json")
    with pytest.raises(
        ManifestError, match=r"tokenizer\.json: sha256 .* the tokenizer was changed"
    ):
        load_verified(folder)


def test_vocabulary_size_must_match(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["vocab"]["size"] = 99
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="holds 4 ids, the manifest says 99"):
        load_verified(folder)


def test_other_cleaning_version_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["text"]["cleaning_version"] = 0
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="cleaning v0"):
        load_verified(folder)


def test_a_cleaning_v2_model_is_refused_in_one_line(tmp_path: Path) -> None:
    # A model shipped before cleaning v3: its manifest names vocab.json (a word list, not a
    # tokenizer file) and cleaning v2; the refusal names the version, not the file.
    folder = make_folder(tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["text"]["cleaning_version"] = 2
    data["vocab"] = {"file": "vocab.json", "sha256": "0" * 64, "size": 4}
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(
        ManifestError, match=r"trained with text cleaning v2, this code cleans with v3; retrain"
    ) as err:
        load_verified(folder)
    assert "\n" not in str(err.value)


def test_the_manifest_names_the_tokenizer_file_and_its_hash(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    assert data["vocab"]["file"] == "tokenizer.json"
    assert data["vocab"]["sha256"] == sha256_file(folder / "tokenizer.json")


def test_an_unreadable_tokenizer_file_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder / "tokenizer.json").write_text('{"words": ["good"]}')
    data = json.loads((folder / "manifest.json").read_text())
    data["vocab"]["sha256"] = sha256_file(folder / "tokenizer.json")
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"tokenizer\.json: unreadable tokenizer"):
        load_verified(folder)


def test_a_manifest_of_another_format_is_refused_in_one_line(tmp_path: Path) -> None:
    # Format 1 (two classes, one data file, cleaning v1) lacks fields format 2 requires;
    # the refusal names the format rather than listing every missing field.
    folder = make_folder(tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["format_version"] = 1
    del data["training"]["sources"]
    data["training"]["data_file"] = "d.csv"
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"manifest format 1, this code reads format 2") as err:
        load_verified(folder)
    assert "\n" not in str(err.value)


def test_missing_manifest_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        load_verified(tmp_path)
    (tmp_path / "m").mkdir()
    folder = make_folder(tmp_path / "m")
    (folder / "model.onnx").unlink()
    with pytest.raises(ManifestError, match=r"model\.onnx named in the manifest is missing"):
        load_verified(folder)


def test_keras_only_folder_needs_export_for_serving(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["onnx"] = None
    (folder / "manifest.json").write_text(json.dumps(data))
    assert load_verified(folder, need_onnx=False)[0].onnx is None
    with pytest.raises(ManifestError, match="sentistream export"):
        load_verified(folder)
