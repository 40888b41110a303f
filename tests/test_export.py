"""Export: Keras artifact folder → fused-LSTM ONNX with sequence_lens, parity, int8.

The slow tests train a tiny model (vocabulary 60, embedding 8, LSTM 6, with the real model's
mask, and recurrent dropout so the export must build its fused twin) on a synthetic word task
for a few seconds, write the folder the trainer writes, and export it once per LSTM shape:
forward (the notebook's) and bidirectional (the shipped model's).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import pytest
from onnx import helper

from sentistream.manifest import (
    MANIFEST_FILE,
    VOCAB_FILE,
    Manifest,
    SourceSection,
    TextSection,
    TrainingSection,
    VocabSection,
    load_manifest,
    load_verified,
    sha256_file,
    utc_now,
)
from sentistream.text import TextConfig, Vocabulary, pad, pad_to_longest

if TYPE_CHECKING:  # the export modules import TensorFlow; tests import them lazily
    from sentistream.export.pipeline import ExportReport

Exported = tuple[Path, "ExportReport"]

LABELS = ["negative", "positive"]
POSITIVE = ["good", "great", "happy", "love", "fun", "nice", "awesome", "best", "yay", "cool"]
NEGATIVE = ["bad", "sad", "hate", "awful", "worst", "ugh", "sick", "tired", "boring", "cry"]
FILLER = [f"w{i}" for i in range(38)]  # 58 words + pad + oov = 60 ids
MAXLEN = 16


def _tweets(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Tweets of 1-14 words whose label is the majority of sentiment words (ties avoided)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        length = int(rng.integers(1, 15))
        n_own = int(rng.integers(1, length + 1))
        n_other = int(rng.integers(0, n_own)) if length > n_own else 0
        words = (
            list(rng.choice(own, n_own))
            + list(rng.choice(other, min(n_other, length - n_own)))
            + list(rng.choice(FILLER, max(0, length - n_own - n_other)))
        )
        rng.shuffle(words)
        # some unknown words, which become the OOV id
        texts.append(" ".join(words) + (" zzunknown" if rng.random() < 0.2 else ""))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module", params=["forward", "bidirectional"])
def keras_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    from sentistream.trainer.model import ModelConfig, build_model

    folder = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(7)
    vocab = Vocabulary(POSITIVE + NEGATIVE + FILLER)
    config = TextConfig(maxlen=MAXLEN, num_words=vocab.size)
    model_config = ModelConfig(
        vocab_size=vocab.size,
        embedding_dim=8,
        lstm_units=6,
        bidirectional=request.param == "bidirectional",
        recurrent_dropout=0.2,
        num_labels=len(LABELS),
        learning_rate=0.02,
    )
    model = build_model(model_config)
    texts, labels = _tweets(800, seed=1)
    x = pad([vocab.encode_text(t, config) for t in texts], MAXLEN)
    y = np.eye(2, dtype=np.float32)[labels]
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)

    model.save(folder / "model.keras")
    (folder / VOCAB_FILE).write_text(vocab.to_json(), encoding="utf-8")
    holdout_texts, holdout_labels = _tweets(300, seed=2)
    with (folder / "holdout.jsonl").open("w", encoding="utf-8") as handle:
        for text, label in zip(holdout_texts, holdout_labels, strict=True):
            handle.write(json.dumps({"text": text, "label": LABELS[label]}) + "\n")
    Manifest(
        name="tiny",
        version="test",
        created_at=utc_now(),
        labels=LABELS,
        text=TextSection.of(config),
        vocab=VocabSection(sha256=sha256_file(folder / VOCAB_FILE), size=vocab.size),
        keras_file="model.keras",
        training=TrainingSection(
            sources=[
                SourceSection(
                    file="synthetic",
                    sha256="0" * 64,
                    encoding="utf-8",
                    weight=1.0,
                    rows=1100,
                    split={"train": 800, "validation": 0, "test": 300},
                )
            ],
            seed=7,
            epochs=3,
            batch_size=32,
            class_weight="none",
            glove=False,
            hyperparameters=model_config.to_dict(),
            metrics={},
            baseline={},
            duration_seconds=0.0,
        ),
        versions={"keras": keras.__version__},
    ).write(folder)
    return folder


@pytest.fixture(scope="module")
def exported(keras_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    from sentistream.export.pipeline import export_model

    out = tmp_path_factory.mktemp("onnx")
    report = export_model(keras_dir, out, log=lambda _: None)
    return out, report


def _op_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_export_writes_a_fused_variable_length_model(exported: Exported) -> None:
    out, report = exported
    counts = _op_counts(out / "model.onnx")
    assert counts.get("LSTM") == 1
    assert "Loop" not in counts
    assert "Scan" not in counts

    manifest, _ = load_verified(out)
    assert manifest.keras_file is None
    assert manifest.onnx is not None
    assert manifest.onnx.sha256 == sha256_file(out / "model.onnx") == report.sha256
    assert manifest.onnx.lstm_op == "LSTM"
    assert manifest.onnx.variable_length is True
    assert manifest.onnx.quantization == "none"
    assert (manifest.onnx.input_name, manifest.onnx.input_dtype, manifest.onnx.output_name) == (
        "token_ids",
        "int32",
        "probabilities",
    )
    assert {"tf2onnx", "onnx", "onnxruntime", "keras"} <= manifest.versions.keys()
    parity = manifest.onnx.parity
    assert parity["n"] == 300
    assert parity["max_abs_diff_full_padding"] <= 1e-5
    assert parity["max_abs_diff_pad_to_longest"] <= 1e-5
    assert parity["labels_equal"] is True
    assert parity["label_agreement"] == 1.0
    assert parity["accuracy"] > 0.8  # the task is learnable: weights are not trivial
    (lstm,) = (n for n in onnx.load(str(out / "model.onnx")).graph.node if n.op_type == "LSTM")
    direction = {a.name: helper.get_attribute_value(a) for a in lstm.attribute}.get(
        "direction", b"forward"
    )
    bidirectional = manifest.training.hyperparameters["bidirectional"]
    assert direction == (b"bidirectional" if bidirectional else b"forward")


@pytest.mark.slow
def test_graph_interface(exported: Exported) -> None:
    out, _ = exported
    session = _session(out / "model.onnx")
    (inp,) = session.get_inputs()
    (outp,) = session.get_outputs()
    assert (inp.name, inp.type, inp.shape) == ("token_ids", "tensor(int32)", ["batch", "time"])
    assert (outp.name, outp.type, outp.shape) == ("probabilities", "tensor(float)", ["batch", 2])


@pytest.mark.slow
def test_parity_against_keras_in_both_padding_modes(keras_dir: Path, exported: Exported) -> None:
    import keras

    from sentistream.export.parity import check_parity

    out, _ = exported
    model = keras.models.load_model(keras_dir / "model.keras", compile=False)
    manifest, vocab = load_verified(keras_dir, need_onnx=False)
    texts, _ = _tweets(100, seed=3)
    ids = [vocab.encode_text(t, manifest.text.config()) for t in texts]
    report = check_parity(model, out / "model.onnx", ids, maxlen=MAXLEN, batch_size=7)
    assert report.passed, report.describe()
    assert report.max_abs_diff_full <= 1e-5
    assert report.max_abs_diff_longest <= 1e-5
    assert report.labels_equal


@pytest.mark.slow
def test_same_tweet_alone_or_in_a_longer_batch(exported: Exported) -> None:
    out, _ = exported
    session = _session(out / "model.onnx")
    short = [2, 15, 30]
    others = [[5] * 12, [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53], [3]]
    (alone,) = session.run(["probabilities"], {"token_ids": pad([short], len(short))})
    (batched,) = session.run(["probabilities"], {"token_ids": pad([*others, short], MAXLEN)})
    (longest,) = session.run(
        ["probabilities"], {"token_ids": pad_to_longest([short, *others], MAXLEN)}
    )
    np.testing.assert_allclose(alone[0], batched[3], atol=1e-6)
    np.testing.assert_allclose(alone[0], longest[0], atol=1e-6)


@pytest.mark.slow
def test_served_by_the_inference_module(exported: Exported) -> None:
    from sentistream.inference import SentimentModel

    out, _ = exported
    model = SentimentModel.load(out, threads=1)
    good, bad = model.predict(["so happy love this great day", "sad and tired, worst day"])
    assert (good.label, bad.label) == ("positive", "negative")


@pytest.mark.slow
def test_int8_quantization(
    keras_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentistream.export import pipeline

    # A 6-unit LSTM in int8 flips a borderline tweet or two of 300; the 99 % bar is for the
    # real model. Here the figure must be reported, and the export must pass a lower bar.
    monkeypatch.setattr(pipeline, "MIN_INT8_AGREEMENT", 0.95)
    report = pipeline.export_model(keras_dir, tmp_path, quantize="int8", log=lambda _: None)
    assert report.lstm_op == "DynamicQuantizeLSTM"
    assert _op_counts(tmp_path / "model.onnx").get("DynamicQuantizeLSTM") == 1
    int8 = report.parity["int8"]
    assert 0.95 <= int8["label_agreement_vs_float"] <= 1.0
    assert int8["min_label_agreement"] == 0.95
    assert {"float_accuracy", "int8_accuracy", "accuracy_change"} <= int8.keys()
    assert 0.0 <= int8["batch_invariance"]["max_abs_diff"] < 0.1
    manifest, _ = load_verified(tmp_path)
    assert manifest.onnx is not None
    assert (manifest.onnx.quantization, manifest.onnx.lstm_op) == ("int8", "DynamicQuantizeLSTM")
    assert manifest.onnx.parity["int8"] == int8
    assert manifest.onnx.variable_length is True


@pytest.mark.slow
def test_label_agreement_helper(exported: Exported, tmp_path: Path) -> None:
    from sentistream.export.parity import label_agreement
    from sentistream.export.quantize import quantize_int8

    out, _ = exported
    assert quantize_int8(out / "model.onnx", tmp_path / "int8.onnx") == "DynamicQuantizeLSTM"
    ids = [[2, 3, 4], [20, 21], [5, 6, 7, 8, 9, 10]]
    assert label_agreement(out / "model.onnx", out / "model.onnx", ids, maxlen=MAXLEN) == 1.0
    assert (
        0.0
        <= label_agreement(out / "model.onnx", tmp_path / "int8.onnx", ids, maxlen=MAXLEN)
        <= 1.0
    )


def _break_dense_weights(good: Path, broken: Path) -> None:
    """Copy ``good`` with the Dense layer's kernel shifted: a valid graph with wrong outputs."""
    proto = onnx.load(str(good))
    # The Dense layer's MatMul is the last one (attention pooling has its own before it).
    matmul = [node for node in proto.graph.node if node.op_type == "MatMul"][-1]
    (kernel,) = (init for init in proto.graph.initializer if init.name == matmul.input[1])
    values = onnx.numpy_helper.to_array(kernel).copy()
    values[:, 0] += 0.5
    kernel.CopyFrom(onnx.numpy_helper.from_array(values, kernel.name))
    onnx.save(proto, str(broken))


@pytest.mark.slow
def test_parity_failure_raises_and_writes_no_manifest(
    keras_dir: Path, exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentistream.export import pipeline
    from sentistream.export.onnx_graph import OnnxGraphInfo

    good = exported[0] / "model.onnx"

    def broken_convert(model: object, onnx_path: Path, *, opset: int = 17) -> OnnxGraphInfo:
        _break_dense_weights(good, onnx_path)
        return OnnxGraphInfo("token_ids", "int32", "probabilities", opset, "LSTM", True)

    monkeypatch.setattr(pipeline, "convert", broken_convert)
    out = tmp_path / "out"
    with pytest.raises(pipeline.ExportError, match="parity check failed"):
        pipeline.export_model(keras_dir, out, log=lambda _: None)
    assert not (out / MANIFEST_FILE).exists()
    assert not (out / "model.onnx").exists()


@pytest.mark.slow
def test_int8_below_agreement_threshold_fails(
    keras_dir: Path, exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentistream.export import pipeline
    from sentistream.export.onnx_graph import OnnxGraphInfo

    good = exported[0] / "model.onnx"

    def reuse_convert(model: object, onnx_path: Path, *, opset: int = 17) -> OnnxGraphInfo:
        shutil.copyfile(good, onnx_path)
        return OnnxGraphInfo("token_ids", "int32", "probabilities", opset, "LSTM", True)

    monkeypatch.setattr(pipeline, "convert", reuse_convert)
    monkeypatch.setattr(pipeline, "MIN_INT8_AGREEMENT", 1.01)
    out = tmp_path / "out"
    with pytest.raises(pipeline.ExportError, match="below the required"):
        pipeline.export_model(keras_dir, out, quantize="int8", log=lambda _: None)
    assert not (out / MANIFEST_FILE).exists()


@pytest.mark.slow
def test_export_refuses_its_own_input_folder(keras_dir: Path) -> None:
    from sentistream.export.pipeline import ExportError, export_model

    with pytest.raises(ExportError, match="different folder"):
        export_model(keras_dir, keras_dir, log=lambda _: None)
    assert load_manifest(keras_dir).keras_file == "model.keras"


def _graph(*op_types: str) -> onnx.GraphProto:
    nodes = [helper.make_node(op, ["x"], [f"y{i}"], name=f"n{i}") for i, op in enumerate(op_types)]
    return helper.make_graph(nodes, "g", [], [])


@pytest.mark.slow
def test_loop_or_missing_lstm_is_refused() -> None:
    from sentistream.export.onnx_graph import (
        ConversionError,
        _assert_single_fused_lstm,
    )

    _assert_single_fused_lstm(_graph("Transpose", "LSTM", "MatMul"), "ok")
    with pytest.raises(ConversionError, match="Loop"):
        _assert_single_fused_lstm(_graph("Loop", "MatMul"), "tf2onnx's output")
    with pytest.raises(ConversionError, match="2 fused LSTM"):
        _assert_single_fused_lstm(_graph("LSTM", "LSTM"), "the edited graph")
