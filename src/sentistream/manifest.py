"""``manifest.json``: the contract between training, export and serving.

A model folder holds the model file(s), ``tokenizer.json`` (the Hugging Face ``tokenizers``
pipeline: normalisation and vocabulary) and ``manifest.json``. The manifest names the labels
in output order, every text-pipeline choice, the tokenizer file and the sha256 of each file,
the ONNX graph's input and output names, the training data's digest and the measured metrics.
:func:`load_verified` refuses a folder whose files disagree with it, saying what differs.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sentistream.text import CLEANING_VERSION, TOKENIZER_FILE, TextConfig, TweetTokenizer

__all__ = [
    "MANIFEST_FILE",
    "TOKENIZER_FILE",
    "VOCAB_FILE",
    "Manifest",
    "ManifestError",
    "OnnxSection",
    "TextSection",
    "TrainingSection",
    "VocabSection",
    "load_manifest",
    "load_verified",
    "sha256_file",
    "utc_now",
]

MANIFEST_FILE = "manifest.json"
#: The tokenizer file the manifest's ``vocab`` section names (the name the trainer imports).
VOCAB_FILE = TOKENIZER_FILE
FORMAT_VERSION = 2


class ManifestError(Exception):
    """A model folder that cannot be used as it is; the message says what is wrong."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TextSection(_Frozen):
    maxlen: int
    num_words: int
    padding: Literal["pre", "post"]
    truncating: Literal["pre", "post"]
    cleaning_version: int

    @classmethod
    def of(cls, config: TextConfig) -> TextSection:
        return cls.model_validate(config.to_dict())

    def config(self) -> TextConfig:
        return TextConfig(**self.model_dump())


class VocabSection(_Frozen):
    """The tokenizer: a Hugging Face ``tokenizers`` file holding normaliser, pre-tokenizer and
    vocabulary, used as it is by the trainer, the exporter's parity check and the worker."""

    file: str = Field(default=TOKENIZER_FILE, description="the tokenizer.json in the folder")
    sha256: str
    size: int = Field(description="ids including padding (0) and out-of-vocabulary (1)")


class SourceSection(_Frozen):
    file: str
    sha256: str
    encoding: str
    weight: float = Field(description="how much each row of this file counted in the loss")
    rows: int = Field(description="rows used (of the model's classes)")
    split: dict[str, int] = Field(description="rows in train / validation / test")


class TrainingSection(_Frozen):
    sources: list[SourceSection]
    seed: int
    epochs: int
    batch_size: int
    class_weight: str = Field(description="balanced: each class weighs the same in the loss")
    glove: bool = Field(description="embedding started from GloVe 6B 50d vectors")
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any] = Field(description="held-out test figures of the model, per source")
    baseline: dict[str, Any] = Field(
        description="TF-IDF + logistic regression on the same split, per source"
    )
    duration_seconds: float


class OnnxSection(_Frozen):
    file: str
    sha256: str
    opset: int
    input_name: str
    input_dtype: str
    output_name: str
    lstm_op: str = Field(
        description="the ONNX op the LSTM became, e.g. LSTM or DynamicQuantizeLSTM"
    )
    variable_length: bool = Field(
        description="True: a batch may be padded to its own longest tweet"
    )
    quantization: Literal["none", "int8"] = "none"
    parity: dict[str, Any] = Field(description="ONNX Runtime vs Keras on real tweets")


class DriftSection(_Frozen):
    """The drift figures on the model's held-out split (``sentistream.drift_reference``)."""

    oov_token_ratio: float
    label_share: dict[str, float]
    confidence_p10: float
    mean_tokens: float
    tweets: int


class Manifest(_Frozen):
    format_version: int = FORMAT_VERSION
    name: str
    version: str
    created_at: str
    labels: list[str] = Field(description="class names in the model's output order")
    text: TextSection
    vocab: VocabSection
    keras_file: str | None = None
    onnx: OnnxSection | None = None
    training: TrainingSection
    versions: dict[str, str] = Field(default_factory=dict)
    drift: DriftSection | None = None
    """Written after export, from the held-out split; a manifest without it still loads."""

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{folder}: no {MANIFEST_FILE} (is this a sentistream model folder?)")
    _check_format_version(path)
    _check_cleaning_version(path)
    try:
        manifest = Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not a valid manifest: not UTF-8 ({exc.reason})") from exc
    except ValidationError as exc:
        raise ManifestError(f"{path}: not a valid manifest: {_one_line(exc)}") from exc
    if manifest.text.cleaning_version != CLEANING_VERSION:
        raise ManifestError(
            f"{path}: model was trained with text cleaning v{manifest.text.cleaning_version}, "
            f"this code cleans with v{CLEANING_VERSION}; retrain or use a matching release"
        )
    return manifest


def _check_format_version(path: Path) -> None:
    """Refuse a manifest of another format before pydantic lists every field it lacks."""
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("format_version")
    except (ValueError, AttributeError):
        return  # not a JSON object: model_validate_json says so
    if found != FORMAT_VERSION:
        raise ManifestError(
            f"{path}: manifest format {found}, this code reads format {FORMAT_VERSION}; "
            "re-export the model with this release (format 1 models were two-class, cleaning v1)"
        )


def _check_cleaning_version(path: Path) -> None:
    """Refuse a model of another text cleaning in one line, before pydantic lists the fields
    its manifest names differently."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))["text"]["cleaning_version"]
    except (ValueError, KeyError, TypeError):
        return  # model_validate_json says what is wrong
    if found != CLEANING_VERSION:
        raise ManifestError(
            f"{path}: model was trained with text cleaning v{found}, "
            f"this code cleans with v{CLEANING_VERSION}; retrain or use a matching release"
        )


def _one_line(exc: ValidationError, shown: int = 3) -> str:
    """pydantic's errors as ``labels: Field required; text.maxlen: Input should be ...``,
    without its multi-line layout and documentation URLs."""
    errors = exc.errors(include_url=False)
    parts = [
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
        if error["loc"]
        else error["msg"]
        for error in errors[:shown]
    ]
    if len(errors) > shown:
        parts.append(f"and {len(errors) - shown} more")
    return "; ".join(parts)


def _check_hash(folder: Path, file: str, expected: str, what: str) -> Path:
    path = folder / file
    if not path.is_file():
        raise ManifestError(f"{folder}: {what} file {file} named in the manifest is missing")
    actual = sha256_file(path)
    if actual != expected:
        raise ManifestError(
            f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected[:12]}…; "
            f"the {what} was changed after the manifest was written"
        )
    return path


def load_verified(folder: Path, *, need_onnx: bool = True) -> tuple[Manifest, TweetTokenizer]:
    """Load a model folder's manifest and tokenizer, checking every hash and size."""
    manifest = load_manifest(folder)
    path = _check_hash(folder, manifest.vocab.file, manifest.vocab.sha256, "tokenizer")
    try:
        tokenizer = TweetTokenizer.from_file(path)
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable tokenizer: {exc}") from exc
    if tokenizer.size != manifest.vocab.size:
        raise ManifestError(
            f"{path}: tokenizer holds {tokenizer.size} ids, the manifest says {manifest.vocab.size}"
        )
    if tokenizer.size > manifest.text.num_words:
        raise ManifestError(
            f"{path}: {tokenizer.size} ids exceed the manifest's num_words "
            f"{manifest.text.num_words}"
        )
    if need_onnx:
        if manifest.onnx is None:
            raise ManifestError(
                f"{folder}: the manifest has no onnx section; run `sentistream export` first"
            )
        _check_hash(folder, manifest.onnx.file, manifest.onnx.sha256, "ONNX model")
    return manifest, tokenizer
