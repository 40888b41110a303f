"""The ``sentistream`` command.

Each subcommand imports what it needs when it runs, so ``sentistream worker`` and
``sentistream predict`` never load TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sentistream import __version__
from sentistream.settings_cli import build_settings, settings_options
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

if TYPE_CHECKING:
    from sentistream.inference import SentimentModel

DEFAULT_MODEL_DIR: Path = WorkerSettings.model_fields["model_dir"].default

F = TypeVar("F", bound=Callable[..., Any])

_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)
_out_dir = click.Path(file_okay=False, path_type=Path)
_model_option = click.option(
    "--model",
    "model_dir",
    type=_existing_dir,
    default=DEFAULT_MODEL_DIR,
    show_default=True,
    envvar="SENTISTREAM_MODEL_DIR",
    help="Model folder (model.onnx, vocab.json, manifest.json).",
)


def _setting_option(field: str, flag: str | None = None) -> Callable[[F], F]:
    """A flag of another command that means what the worker's setting ``field`` means: same
    default, same ``SENTISTREAM_*`` variable (one source of truth: :class:`WorkerSettings`).
    With ``flag`` (e.g. ``--topic``) the parameter is named after the flag."""
    info = WorkerSettings.model_fields[field]
    flag = flag or "--" + field.replace("_", "-")
    return click.option(
        flag,
        flag.removeprefix("--").replace("-", "_"),
        default=info.default,
        show_default=True,
        envvar=ENV_PREFIX + field.upper(),
        help=info.description,
    )


_bootstrap_option = _setting_option("bootstrap_servers")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sentistream")
def cli() -> None:
    """Kafka streaming sentiment classifier for tweets (Sentiment140 LSTM on ONNX Runtime)."""


_encoding_option = click.option(
    "--encoding",
    type=click.Choice(["auto", "utf-8", "latin-1"]),
    default="auto",
    show_default=True,
    help="Text encoding of the CSV files; auto reads UTF-8 when the bytes are valid UTF-8, "
    "else latin-1 (Sentiment140 as distributed).",
)
_positive_int = click.IntRange(min=1)


def _classes(value: str) -> tuple[str, ...]:
    from sentistream.dataset import LABELS

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in LABELS]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise click.BadParameter(
            f"{value!r}: give two or three distinct classes out of {', '.join(LABELS)}"
        )
    return tuple(name for name in LABELS if name in names)


@cli.command()
@click.option(
    "--data",
    "data_specs",
    required=True,
    multiple=True,
    metavar="CSV[:WEIGHT]",
    help="A labelled CSV in Sentiment140's layout (repeat for several sources). WEIGHT "
    "(default 1) scales how much each of its rows counts in the loss.",
)
@click.option("--out", required=True, type=_out_dir, help="Folder for the Keras artifact.")
@click.option(
    "--classes",
    default="negative,neutral,positive",
    show_default=True,
    help="Classes to learn; negative,positive drops neutral rows (the notebook's model).",
)
@_encoding_option
@click.option(
    "--num-words",
    default=30_000,
    type=click.IntRange(min=3),
    show_default=True,
    help="Vocabulary size cut (ids, padding and out-of-vocabulary included).",
)
@click.option(
    "--maxlen", default=40, type=_positive_int, show_default=True, help="Tokens kept per tweet."
)
@click.option(
    "--epochs",
    default=8,
    type=_positive_int,
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
    type=_positive_int,
    show_default=True,
    help="Rows per gradient step.",
)
@click.option("--seed", default=42, show_default=True, help="Seed of the split and the weights.")
@click.option(
    "--limit",
    type=_positive_int,
    default=None,
    help="Use a stratified sample of at most N rows of each source.",
)
@click.option(
    "--class-weight",
    type=click.Choice(["balanced", "none"]),
    default="balanced",
    show_default=True,
    help="balanced: every class weighs the same in the loss.",
)
@click.option(
    "--glove/--no-glove",
    default=True,
    show_default=True,
    help="Start the embedding from GloVe 6B 50-d vectors (in its first 50 dimensions).",
)
@click.option(
    "--bidirectional/--unidirectional",
    default=True,
    show_default=True,
    help="Read each tweet in both directions (one fused bidirectional ONNX LSTM).",
)
@click.option(
    "--embedding-dim", default=50, type=_positive_int, show_default=True, help="Word vector size."
)
@click.option(
    "--lstm-units",
    default=128,
    type=_positive_int,
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
def train(
    data_specs: tuple[str, ...],
    out: Path,
    classes: str,
    encoding: str,
    num_words: int,
    maxlen: int,
    epochs: int,
    patience: int,
    batch_size: int,
    seed: int,
    limit: int | None,
    class_weight: str,
    glove: bool,
    bidirectional: bool,
    embedding_dim: int,
    lstm_units: int,
    dropout: float,
    recurrent_dropout: float,
    spatial_dropout: float,
    learning_rate: float,
    baseline: bool,
    name: str,
) -> None:
    """Train the LSTM on labelled CSV files and write a Keras artifact folder.

    Every file is split train / validation / test on its own and scored on its own test
    split, beside a TF-IDF + logistic-regression baseline fitted on the same rows.
    """
    from sentistream.dataset import DatasetError
    from sentistream.trainer.glove import GloveError
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
    config = TrainConfig(
        sources=sources,
        out=out,
        classes=_classes(classes),
        encoding=encoding,  # type: ignore[arg-type]
        num_words=num_words,
        maxlen=maxlen,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        seed=seed,
        limit=limit,
        class_weight=class_weight,  # type: ignore[arg-type]
        glove=glove,
        baseline=baseline,
        name=name,
        model={
            "embedding_dim": embedding_dim,
            "lstm_units": lstm_units,
            "bidirectional": bidirectional,
            "dropout": dropout,
            "recurrent_dropout": recurrent_dropout,
            "spatial_dropout": spatial_dropout,
            "learning_rate": learning_rate,
        },
    )
    try:
        report = run_training(config, log=_log)
    except (DatasetError, GloveError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    _log(
        f"trained {report.epochs_run} epoch(s) in {report.duration_seconds:.0f} s; "
        f"wrote {report.out} (report.json has every figure)"
    )


@cli.command()
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=_existing_dir,
    help="Keras artifact folder written by `sentistream train`.",
)
@click.option("--out", required=True, type=_out_dir, help="Folder for model.onnx + manifest.")
@click.option(
    "--quantize",
    type=click.Choice(["none", "int8"]),
    default="none",
    show_default=True,
    help="int8: ONNX Runtime dynamic quantization.",
)
@click.option("--opset", default=17, show_default=True)
@click.option(
    "--parity-limit",
    default=2000,
    show_default=True,
    help="Held-out tweets used for the ONNX-vs-Keras parity check.",
)
def export(model_dir: Path, out: Path, quantize: str, opset: int, parity_limit: int) -> None:
    """Convert a trained model to ONNX and prove ONNX Runtime gives Keras' outputs."""
    from sentistream.export.pipeline import ExportError, export_model
    from sentistream.manifest import ManifestError

    try:
        report = export_model(
            model_dir,
            out,
            quantize="int8" if quantize == "int8" else "none",
            opset=opset,
            parity_limit=parity_limit,
            log=_log,
        )
    except (ExportError, ManifestError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(dataclasses.asdict(report), indent=2, default=str))


@cli.command()
@click.argument("texts", nargs=-1, required=True)
@_model_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def predict(texts: tuple[str, ...], model_dir: Path, as_json: bool) -> None:
    """Classify TEXTS with the ONNX model (no TensorFlow)."""
    model = _load_model(model_dir)
    for text, prediction in zip(texts, model.predict(list(texts)), strict=True):
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "text": text,
                        "label": prediction.label,
                        "probabilities": prediction.probabilities,
                    }
                )
            )
        else:
            p = prediction.probabilities[prediction.label]
            click.echo(f"{prediction.label:<9} {p:.3f}  {text}")


@cli.command()
@click.option(
    "--data",
    "data_files",
    required=True,
    multiple=True,
    type=_existing_file,
    help="A labelled CSV in Sentiment140's layout (repeat for several files).",
)
@_model_option
@_encoding_option
@click.option(
    "--batch-size",
    default=256,
    type=_positive_int,
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


@cli.command()
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(path_type=Path),
    help="Sentiment140-layout .csv, or a text file with one tweet per line.",
)
@_setting_option("input_topic", "--topic")
@_bootstrap_option
@click.option("--rate", type=float, default=None, help="Tweets per second (default: flat out).")
@click.option("--limit", type=int, default=None, help="Send at most N tweets.")
@click.option("--loop", is_flag=True, help="Start again at the end of the file, forever.")
def produce(
    path: Path,
    topic: str,
    bootstrap_servers: str,
    rate: float | None,
    limit: int | None,
    loop: bool,
) -> None:
    """Send tweets from a file to a topic as JSON {"id", "text"} messages keyed by id."""
    from kafka import KafkaProducer
    from tqdm import tqdm

    from sentistream.replay import Pacer, ReplayError, read_tweets

    try:
        items = read_tweets(path)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    if limit is not None:
        items = items[:limit]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","), acks="all", linger_ms=5
    )
    pacer = Pacer(rate)
    sent = 0
    started = time.monotonic()
    try:
        while True:
            for item in tqdm(items, unit="tweet", desc=f"-> {topic}", file=sys.stderr):
                pacer.wait()
                producer.send(topic, key=item.key(), value=item.value())
                sent += 1
            if not loop:
                break
    except KeyboardInterrupt:
        _log("interrupted")
    finally:
        producer.flush()
        producer.close()
    elapsed = time.monotonic() - started
    _log(f"sent {sent} tweets to {topic} in {elapsed:.1f} s ({sent / max(elapsed, 1e-9):.0f}/s)")


@cli.command()
@_setting_option("output_topic", "--topic")
@_bootstrap_option
@click.option("--from-beginning", is_flag=True, help="Start at the oldest label, not the newest.")
@click.option("--max", "max_messages", type=int, default=None, help="Stop after N labels.")
@click.option(
    "--timeout", type=float, default=None, help="Stop after this many seconds without a new label."
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON values.")
@click.option("--summary", is_flag=True, help="End with counts, throughput and latency.")
def tail(
    topic: str,
    bootstrap_servers: str,
    from_beginning: bool,
    max_messages: int | None,
    timeout: float | None,
    as_json: bool,
    summary: bool,
) -> None:
    """Print labelled tweets from the output topic as they arrive (Ctrl-C to stop)."""
    from kafka import KafkaConsumer

    from sentistream.tail import Summary, format_label

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        consumer_timeout_ms=int(timeout * 1000) if timeout else float("inf"),
    )
    shown = 0
    seen = Summary()
    try:
        for message in consumer:
            click.echo(
                message.value.decode("utf-8", "replace") if as_json else format_label(message.value)
            )
            seen.add(message.value)
            shown += 1
            if max_messages is not None and shown >= max_messages:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    if summary:
        _log(seen.render())


@cli.command("create-topics")
@_bootstrap_option
@click.option(
    "--partitions",
    default=3,
    show_default=True,
    help="Partitions of the input and output topics (the most workers that help).",
)
@_setting_option("input_topic")
@_setting_option("output_topic")
@_setting_option("dlq_topic")
def create_topics(
    bootstrap_servers: str, partitions: int, input_topic: str, output_topic: str, dlq_topic: str
) -> None:
    """Create the input, output and dead-letter topics (those that exist are left alone)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","), client_id="sentistream-admin"
    )
    try:
        existing = set(admin.list_topics())
        wanted = {input_topic: partitions, output_topic: partitions, dlq_topic: 1}
        missing = {
            name: {"num_partitions": count, "replication_factor": 1}
            for name, count in wanted.items()
            if name not in existing
        }
        if missing:
            admin.create_topics(missing)
            admin.wait_for_topics(list(missing), timeout_ms=30_000)
        for name, count in wanted.items():
            state = "created" if name in missing else "exists"
            _log(f"{name}: {state}" + (f" ({count} partitions)" if name in missing else ""))
    finally:
        admin.close()


@cli.command()
@settings_options(WorkerSettings, ENV_PREFIX)
def worker(**flags: Any) -> None:
    """Consume tweets from Kafka, label them with the ONNX model, publish the labels."""
    import logging

    settings = build_settings(WorkerSettings, flags)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(
        max(logging.WARNING, logging.getLevelName(settings.log_level))
    )
    from sentistream.manifest import ManifestError
    from sentistream.worker.main import run_worker

    try:
        code = run_worker(settings)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


@cli.command()
@_model_option
@click.option(
    "--data",
    type=_existing_file,
    default=Path("../shared/data/sentiment140-100k/sentiment140-100k.csv"),
    show_default=True,
    help="Tweets to run (Sentiment140 layout).",
)
@click.option(
    "--tweets",
    default=20_000,
    show_default=True,
    help="Tweets for the ceiling and the end-to-end backlog.",
)
@click.option("--batch-sizes", default="1,8,32,128,256,512", show_default=True)
@click.option(
    "--bucket-size",
    default=32,
    show_default=True,
    help="Length-bucket size for the bucketed ceiling (the worker's default).",
)
@click.option(
    "--keras-model",
    type=_existing_dir,
    default=None,
    help="Keras artifact folder for the notebook baseline (needs TensorFlow).",
)
@click.option("--baseline-tweets", default=500, show_default=True)
@click.option(
    "--bootstrap-servers",
    default=None,
    help="Use this broker; by default a throw-away one is started.",
)
@click.option("--skip-kafka", is_flag=True, help="Only the inference measurements.")
@click.option("--latency-seconds", default=10.0, show_default=True)
@click.option(
    "--worker-setting",
    "worker_settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Worker settings for the end-to-end run, e.g. max_batch_size=256.",
)
@click.option("--out", type=_out_dir, default=Path("runs/bench"), show_default=True)
def bench(
    model_dir: Path,
    data: Path,
    tweets: int,
    batch_sizes: str,
    bucket_size: int,
    keras_model: Path | None,
    baseline_tweets: int,
    bootstrap_servers: str | None,
    skip_kafka: bool,
    latency_seconds: float,
    worker_settings: tuple[str, ...],
    out: Path,
) -> None:
    """Measure the ONNX ceiling, the worker through Kafka, and the one-at-a-time baselines."""
    import contextlib

    from sentistream.bench.e2e import local_broker, run_end_to_end
    from sentistream.bench.raw import (
        keras_one_at_a_time,
        ort_ceiling,
        ort_one_at_a_time,
        sample,
    )
    from sentistream.bench.report import write_report
    from sentistream.dataset import load_labelled

    model = _load_model(model_dir)
    texts = load_labelled(data).texts
    texts = sample(texts, tweets)
    ids = [model.encode(t) for t in texts]
    sizes = [int(b) for b in batch_sizes.split(",")]
    _log(f"ONNX Runtime ceiling over {len(ids)} tweets, batch sizes {sizes}")
    ceiling = ort_ceiling(model, ids, sizes) + ort_ceiling(
        model, ids, [b for b in sizes if b > bucket_size], bucket_size=bucket_size
    )
    for row in ceiling:
        _log(f"  {row.name}, batch {row.batch_size:>4}: {row.per_second:,.0f} tweets/s")
    baselines = [ort_one_at_a_time(model, ids[: baseline_tweets * 4])]
    if keras_model is not None:
        baselines.append(keras_one_at_a_time(keras_model, texts[:baseline_tweets]))
    for row in baselines:
        _log(f"  {row.name}: {row.per_second:,.0f} tweets/s")
    settings = dict(item.split("=", 1) for item in worker_settings)
    end_to_end = None
    if not skip_kafka:
        broker = (
            contextlib.nullcontext(bootstrap_servers) if bootstrap_servers else local_broker(_log)
        )
        with broker as bootstrap:
            end_to_end = run_end_to_end(
                bootstrap,
                model_dir,
                texts,
                latency_seconds=latency_seconds,
                worker_settings=settings,
                log=_log,
            )
    assert model.manifest.onnx is not None
    write_report(
        out,
        model={
            "name": model.manifest.name,
            "version": model.manifest.version,
            "sha256": model.sha256,
            "lstm_op": model.manifest.onnx.lstm_op,
            "quantization": model.manifest.onnx.quantization,
        },
        ceiling=ceiling,
        baselines=baselines,
        end_to_end=end_to_end,
        command="sentistream bench " + " ".join(sys.argv[2:]),
    )
    click.echo((out / "bench.md").read_text())


def _load_model(model_dir: Path) -> SentimentModel:
    from sentistream.inference import SentimentModel
    from sentistream.manifest import ManifestError

    try:
        return SentimentModel.load(model_dir)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc


def _log(message: str) -> None:
    click.echo(message, err=True)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
