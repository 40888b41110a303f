"""Commands for the model's people: train, export, evaluate, predict.

Each imports what it needs when it runs: ``train`` and ``export`` load TensorFlow, ``predict``
and ``evaluate`` only ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sentistream.cli.options import (
    encoding_option,
    existing_dir,
    existing_file,
    log,
    model_option,
    out_dir,
    positive_int,
)
from sentistream.cli.settings_options import IntRange, Option
from sentistream.predict import PredictionTable, chunks, classify, read_texts

if TYPE_CHECKING:
    from sentistream.inference import SentimentModel

__all__ = ["evaluate", "export", "predict", "train"]


def _classes(value: str) -> tuple[str, ...]:
    from sentistream.dataset import LABELS

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in LABELS]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise click.BadParameter(
            f"{value!r}: give two or three distinct classes out of {', '.join(LABELS)}"
        )
    return tuple(name for name in LABELS if name in names)


@click.command()
@click.option(
    "--data",
    "data_specs",
    required=True,
    multiple=True,
    metavar="CSV[:WEIGHT]",
    help="A labelled CSV in Sentiment140's layout (repeat for several sources). WEIGHT "
    "(default 1) scales how much each of its rows counts in the loss.",
)
@click.option("--out", required=True, type=out_dir, help="Folder for the Keras artifact.")
@click.option(
    "--classes",
    default="negative,neutral,positive",
    show_default=True,
    help="Classes to learn; negative,positive drops neutral rows (the notebook's model).",
)
@encoding_option
@click.option(
    "--num-words",
    default=30_000,
    type=click.IntRange(min=3),
    show_default=True,
    help="Vocabulary size cut (ids, padding and out-of-vocabulary included).",
)
@click.option(
    "--maxlen", default=40, type=positive_int, show_default=True, help="Tokens kept per tweet."
)
@click.option(
    "--epochs",
    default=8,
    type=positive_int,
    show_default=True,
    help="Upper bound on epochs (early stopping usually ends sooner).",
)
@click.option(
    "--patience",
    default=2,
    type=click.IntRange(min=0),
    show_default=True,
    help="Epochs without a better validation loss before stopping (each such epoch "
    "also cuts the learning rate to 30 %).",
)
@click.option(
    "--batch-size",
    default=128,
    type=positive_int,
    show_default=True,
    help="Rows per gradient step.",
)
@click.option(
    "--seed",
    default=42,
    type=click.IntRange(min=0),
    show_default=True,
    help="Seed of the split and the weights.",
)
@click.option(
    "--limit",
    type=positive_int,
    default=None,
    help="Use a stratified sample of at most N rows of each source.",
)
@click.option(
    "--class-weight",
    type=click.Choice(["balanced-per-source", "balanced", "none"]),
    default="balanced-per-source",
    show_default=True,
    help="balanced-per-source: inside each file every class weighs the same; balanced: every "
    "class weighs the same over all files; none: only the file weights.",
)
@click.option(
    "--glove/--no-glove",
    default=True,
    show_default=True,
    help="Start the embedding from GloVe 6B 50-d vectors (in its first 50 dimensions).",
)
@click.option(
    "--train-embedding/--freeze-embedding",
    default=True,
    show_default=True,
    help="Fine-tune the word vectors, or keep them as they start (GloVe's).",
)
@click.option(
    "--bidirectional/--unidirectional",
    default=True,
    show_default=True,
    help="Read each tweet in both directions (one fused bidirectional ONNX LSTM).",
)
@click.option(
    "--embedding-dim", default=50, type=positive_int, show_default=True, help="Word vector size."
)
@click.option(
    "--lstm-units",
    default=128,
    type=positive_int,
    show_default=True,
    help="LSTM units per direction.",
)
@click.option(
    "--dropout",
    default=0.2,
    type=click.FloatRange(0, 1, max_open=True),
    show_default=True,
    help="Dropout on the LSTM's inputs.",
)
@click.option(
    "--recurrent-dropout",
    default=0.0,
    type=click.FloatRange(0, 1, max_open=True),
    show_default=True,
    help="Dropout on the LSTM's recurrent state (slower to train).",
)
@click.option(
    "--spatial-dropout",
    default=0.3,
    type=click.FloatRange(0, 1, max_open=True),
    show_default=True,
    help="Drops whole word vectors.",
)
@click.option(
    "--learning-rate",
    default=2e-3,
    type=click.FloatRange(0, min_open=True),
    show_default=True,
    help="Adam's learning rate.",
)
@click.option(
    "--baseline/--no-baseline",
    default=True,
    show_default=True,
    help="Also fit and score the TF-IDF + logistic regression baseline.",
)
@click.option(
    "--name",
    default="sentistream-lstm",
    show_default=True,
    help="Model name written into the manifest and every output record.",
)
def train(data_specs: tuple[str, ...], classes: str, **flags: Any) -> None:
    """Train the LSTM on labelled CSV files and write a Keras artifact folder.

    Every file is split train / validation / test on its own and scored on its own test
    split, beside a TF-IDF + logistic-regression baseline fitted on the same rows.
    """
    from sentistream.dataset import DatasetError
    from sentistream.trainer.glove import GloveError
    from sentistream.trainer.model import ModelConfig
    from sentistream.trainer.sources import DataSource
    from sentistream.trainer.train import TrainConfig
    from sentistream.trainer.train import train as run_training

    try:
        sources = tuple(DataSource.parse(spec) for spec in data_specs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--data") from exc
    for source in sources:
        if not source.path.is_file():
            raise click.BadParameter(f"{source.path}: no such file", param_hint="--data")
    # Each flag is named after the TrainConfig or ModelConfig field it sets.
    network = {field.name for field in dataclasses.fields(ModelConfig)}
    model = {name: flags.pop(name) for name in list(flags) if name in network}
    config = TrainConfig(sources=sources, classes=_classes(classes), model=model, **flags)
    try:
        report = run_training(config, log=log)
    except (DatasetError, GloveError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    log(
        f"trained {report.epochs_run} epoch(s) in {report.duration_seconds:.0f} s; "
        f"wrote {report.out} (report.json has every figure)"
    )


@click.command()
@click.option(
    "--keras-dir",
    "--model",
    "keras_dir",
    cls=Option,
    aliases=["--model"],
    required=True,
    type=existing_dir,
    help="Keras artifact folder written by `sentistream train`.",
)
@click.option("--out", required=True, type=out_dir, help="Folder for model.onnx + manifest.")
@click.option(
    "--quantize",
    type=click.Choice(["none", "int8"]),
    default="none",
    show_default=True,
    help="int8: ONNX Runtime dynamic quantization.",
)
@click.option(
    "--opset", type=IntRange(min=1), default=17, show_default=True, help="ONNX opset version."
)
@click.option(
    "--parity-limit",
    type=IntRange(min=1),
    default=2000,
    show_default=True,
    help="Held-out tweets used for the ONNX-vs-Keras parity check.",
)
def export(keras_dir: Path, out: Path, quantize: str, opset: int, parity_limit: int) -> None:
    """Convert a trained model to ONNX and prove ONNX Runtime gives Keras' outputs."""
    from sentistream.export.pipeline import ExportError, export_model
    from sentistream.manifest import ManifestError

    try:
        report = export_model(
            keras_dir,
            out,
            quantize="int8" if quantize == "int8" else "none",
            opset=opset,
            parity_limit=parity_limit,
            log=log,
        )
    except (ExportError, ManifestError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(dataclasses.asdict(report), indent=2, default=str))


@click.command()
@click.argument("texts", nargs=-1)
@model_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--no-header", is_flag=True, help="Leave out the line naming the columns.")
def predict(texts: tuple[str, ...], model_dir: Path, as_json: bool, no_header: bool) -> None:
    """Classify TEXTS with the ONNX model (no TensorFlow).

    Without TEXTS, or with `-` among them, texts are read from stdin, one per line:
    `cut -f2 tweets.tsv | sentistream predict`. A text the worker would not label (empty or
    only white space) gets the worker's verdict (`empty_text`) instead of a label. Columns:
    the label, then each label's probability in the model's order, then the text.
    """
    stdin = sys.stdin
    if not texts and stdin.isatty():
        raise click.UsageError("give TEXTS, or pipe texts into stdin one per line (or pass -)")
    model = _load_model(model_dir)
    table = PredictionTable(model.labels)
    if not as_json and not no_header:
        click.echo(table.header())
    for chunk in chunks(read_texts(texts or ("-",), stdin), 256):
        for text, verdict in zip(chunk, classify(model, chunk), strict=True):
            click.echo(table.json(text, verdict) if as_json else table.row(text, verdict))


@click.command()
@click.option(
    "--data",
    "data_files",
    required=True,
    multiple=True,
    type=existing_file,
    help="A labelled CSV in Sentiment140's layout (repeat for several files).",
)
@model_option
@encoding_option
@click.option(
    "--batch-size",
    default=256,
    type=positive_int,
    show_default=True,
    help="Tweets per ONNX Runtime call.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(
    data_files: tuple[Path, ...], model_dir: Path, encoding: str, batch_size: int, as_json: bool
) -> None:
    """Score labelled CSV files through ONNX Runtime, one line per file.

    Per file: n, accuracy, macro F1, macro-averaged recall over negative/neutral/positive
    (SemEval's measure; files with neutral rows only) and positive/negative accuracy decided
    by p(positive) vs p(negative) on the rows labelled positive or negative.
    """
    import numpy as np
    from tqdm import tqdm

    from sentistream.dataset import DatasetError, load_labelled
    from sentistream.scoring import HEADLINE_KEYS, evaluate_probabilities, format_table

    model = _load_model(model_dir)
    results: dict[str, dict[str, Any]] = {}
    for path in data_files:
        try:
            tweets = load_labelled(path, encoding)  # type: ignore[arg-type]
        except DatasetError as exc:
            raise click.ClickException(str(exc)) from exc
        chunks = []
        with tqdm(
            total=len(tweets),
            unit="tweet",
            desc=path.name,
            disable=as_json or None,
            file=sys.stderr,
        ) as bar:
            for start in range(0, len(tweets), batch_size):
                chunk = tweets.texts[start : start + batch_size]
                chunks.append(model.predict_ids([model.encode(t) for t in chunk], bucket_size=32))
                bar.update(len(chunk))
        scores = evaluate_probabilities(tweets.labels, np.concatenate(chunks), model.labels)
        scores["data"] = {"file": str(path), "sha256": tweets.sha256, "encoding": tweets.encoding}
        results[str(path)] = scores
    model_info = {
        "name": model.manifest.name,
        "version": model.manifest.version,
        "sha256": model.sha256,
        "labels": model.labels,
    }
    if as_json:
        document: dict[str, Any] = {"model": model_info, "files": results}
        if len(results) == 1:
            (only,) = results.values()
            document.update({key: only[key] for key in HEADLINE_KEYS})
        click.echo(json.dumps(document))
    else:
        click.echo(
            f"model {model_info['name']} {model_info['version']} "
            f"(labels: {', '.join(model.labels)})"
        )
        click.echo(format_table(results))


def _load_model(model_dir: Path) -> SentimentModel:
    from sentistream.inference import SentimentModel
    from sentistream.manifest import ManifestError

    try:
        return SentimentModel.load(model_dir)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
