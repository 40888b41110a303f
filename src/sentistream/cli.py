"""The ``sentistream`` command.

Each subcommand imports what it needs when it runs, so ``sentistream worker`` and
``sentistream predict`` never load TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sentistream import __version__
from sentistream.cli_relabel import relabel
from sentistream.connection import ConnectionSettingsError, KafkaConnection
from sentistream.settings_cli import (
    FloatRange,
    IntRange,
    Option,
    build_settings,
    click_type,
    settings_options,
    unknown_variables,
)
from sentistream.worker.settings import ENV_PREFIX, KAFKA_CLIENTS, WorkerSettings

if TYPE_CHECKING:
    from sentistream.inference import Prediction, SentimentModel

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# How long produce, tail and create-topics wait for a broker to answer before they give up.
CONNECT_TIMEOUT_S = 5.0
# `tail` explains itself when nothing arrived this long after it started.
TAIL_HINT_AFTER_S = 5.0


def default_model_dir() -> Path:
    """The shipped model: inside the installed package if it carries one, else in the project
    checkout the package runs from, else relative to the current folder (the container
    image's working directory), so commands work from any folder."""
    relative: Path = WorkerSettings.model_fields["model_dir"].default
    package = Path(__file__).resolve().parent
    for base in (package, PROJECT_ROOT):
        if (base / relative).is_dir():
            return base / relative
    return relative


DEFAULT_MODEL_DIR = default_model_dir()

_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)
_out_dir = click.Path(file_okay=False, path_type=Path)
_model_option = click.option(
    "--model-dir",
    "--model",
    "model_dir",
    cls=Option,
    aliases=["--model"],
    type=_existing_dir,
    default=DEFAULT_MODEL_DIR,
    show_default=True,
    envvar=ENV_PREFIX + "MODEL_DIR",
    show_envvar=True,
    help="Model folder (model.onnx, vocab.json, manifest.json).",
)


def _setting_option(field: str, aliases: Sequence[str] = ()) -> Callable[[F], F]:
    """A flag of another command that means what the worker's setting ``field`` means: same
    name, default, bounds and ``SENTISTREAM_*`` variable (one source of truth:
    :class:`WorkerSettings`). ``aliases`` are older names kept working, not shown."""
    info = WorkerSettings.model_fields[field]
    return click.option(
        "--" + field.replace("_", "-"),
        *aliases,
        field,
        cls=Option,
        aliases=aliases,
        type=click_type(info),
        default=info.default,
        show_default=True,
        envvar=ENV_PREFIX + field.upper(),
        show_envvar=True,
        help=info.description,
    )


def _connection_options(command: F) -> F:
    """Every connection setting (:class:`KafkaConnection`: servers, TLS, SASL) as the worker's
    flags and variables; the command receives them as one ``connection`` argument. Put it
    right above the ``def``."""
    return _connection_options_with({})(command)


def _connection_options_with(defaults: Mapping[str, Any]) -> Callable[[F], F]:
    """:func:`_connection_options` with other defaults shown by ``--help`` (``None``: no
    default shown; the setting's own applies)."""
    names = set(KafkaConnection.model_fields)

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flags = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
            kwargs["connection"] = build_settings(KafkaConnection, flags)
            return command(*args, **kwargs)

        options = settings_options(KafkaConnection, ENV_PREFIX, defaults=defaults)
        return options(wrapper)  # type: ignore[return-value]

    return decorate


_KNOWN_VARIABLES = {ENV_PREFIX + name.upper() for name in WorkerSettings.model_fields}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sentistream")
def cli() -> None:
    """Kafka streaming sentiment classifier for tweets (Sentiment140 LSTM on ONNX Runtime)."""
    for warning in unknown_variables(os.environ, ENV_PREFIX, _KNOWN_VARIABLES):
        _log(warning)


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
@click.option(
    "--seed",
    default=42,
    type=click.IntRange(min=0),
    show_default=True,
    help="Seed of the split and the weights.",
)
@click.option(
    "--limit",
    type=_positive_int,
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
    train_embedding: bool,
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
            "train_embedding": train_embedding,
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
    "--keras-dir",
    "--model",
    "keras_dir",
    cls=Option,
    aliases=["--model"],
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
            log=_log,
        )
    except (ExportError, ManifestError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(dataclasses.asdict(report), indent=2, default=str))


@cli.command()
@click.argument("texts", nargs=-1)
@_model_option
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
    table = _PredictionTable(model.labels)
    if not as_json and not no_header:
        click.echo(table.header())
    for chunk in _chunks(_texts(texts or ("-",), stdin), 256):
        for text, verdict in zip(chunk, _classify(model, chunk), strict=True):
            click.echo(table.json(text, verdict) if as_json else table.row(text, verdict))


def _texts(texts: Iterable[str], stdin: Iterable[str]) -> Iterator[str]:
    for text in texts:
        if text == "-":
            yield from (line.removesuffix("\n") for line in stdin)
        else:
            yield text


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _classify(model: SentimentModel, texts: Sequence[str]) -> list[Prediction | str]:
    """Per text its prediction, or the reason the worker would dead-letter it (the worker's
    own check, so the two never disagree)."""
    from sentistream.worker.core.messages import InvalidMessage, decode

    limit = WorkerSettings.model_fields["max_record_bytes"].default
    verdicts: dict[int, Prediction | str] = {}
    valid: dict[int, str] = {}
    for n, text in enumerate(texts):
        try:
            valid[n] = decode(text.encode("utf-8", "surrogateescape"), "text", limit).text
        except InvalidMessage as exc:
            verdicts[n] = exc.reason
    if valid:  # ONNX Runtime is never handed an empty batch
        verdicts.update(zip(valid, model.predict(list(valid.values())), strict=True))
    return [verdicts[n] for n in range(len(texts))]


class _PredictionTable:
    """`predict`'s output: a label column, one probability column per label of the model (in
    the manifest's order, however many there are), the text."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.label_width = max(len(name) for name in [*self.labels, "label", "empty_text"])

    def _line(self, label: str, cells: Sequence[str], text: str) -> str:
        columns = [
            f"{cell:>{max(len(name), 5)}}" for name, cell in zip(self.labels, cells, strict=True)
        ]
        return f"{label:<{self.label_width}}  {'  '.join(columns)}  {text}"

    def header(self) -> str:
        return self._line("label", self.labels, "text")

    def row(self, text: str, verdict: Prediction | str) -> str:
        if isinstance(verdict, str):
            return self._line(verdict, ["-"] * len(self.labels), text)
        cells = [f"{verdict.probabilities[name]:.3f}" for name in self.labels]
        return self._line(verdict.label, cells, text)

    @staticmethod
    def json(text: str, verdict: Prediction | str) -> str:
        if isinstance(verdict, str):
            return json.dumps({"text": text, "label": None, "reason": verdict})
        return json.dumps(
            {"text": text, "label": verdict.label, "probabilities": verdict.probabilities}
        )


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
@_setting_option("input_topic", aliases=["--topic"])
@click.option(
    "--rate",
    type=FloatRange(min=0, min_open=True),
    default=None,
    help="Tweets per second (default: flat out).",
)
@click.option("--limit", type=IntRange(min=1), default=None, help="Send at most N tweets.")
@click.option("--loop", is_flag=True, help="Start again at the end of the file, forever.")
@_connection_options
def produce(
    path: Path,
    input_topic: str,
    rate: float | None,
    limit: int | None,
    loop: bool,
    connection: KafkaConnection,
) -> None:
    """Send tweets from a file to a topic as JSON {"id", "text"} messages keyed by id."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    from tqdm import tqdm

    from sentistream.replay import Pacer, ReplayError, read_tweets

    try:
        items = read_tweets(path)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    if limit is not None:
        items = items[:limit]
    producer = _connect(lambda config: KafkaProducer(**config, acks="all", linger_ms=5), connection)
    pacer = Pacer(rate)
    sent = 0
    failures: list[Exception] = []
    started = time.monotonic()
    try:
        while True:
            bar = tqdm(items, unit="tweet", desc=f"-> {input_topic}", file=sys.stderr, disable=None)
            for item in bar:
                pacer.wait()
                future = producer.send(input_topic, key=item.key(), value=item.value())
                future.add_errback(failures.append)
                sent += 1
            if not loop:
                break
        producer.flush()
    except KeyboardInterrupt:
        _log("interrupted")
    except KafkaError as exc:
        raise click.ClickException(f"sending to {input_topic} failed: {exc}") from exc
    finally:
        producer.close()
    elapsed = time.monotonic() - started
    if failures:
        raise click.ClickException(
            f"{len(failures)} of {sent} tweets were not acknowledged by Kafka; "
            f"the first error: {failures[0]}"
        )
    rate_done = sent / max(elapsed, 1e-9)
    _log(f"sent {sent} tweets to {input_topic} in {elapsed:.1f} s ({rate_done:.0f}/s)")


@cli.command()
@_setting_option("output_topic", aliases=["--topic"])
@click.option("--from-beginning", is_flag=True, help="Start at the oldest label, not the newest.")
@click.option(
    "--max", "max_messages", type=IntRange(min=1), default=None, help="Stop after N labels."
)
@click.option(
    "--timeout",
    type=FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds without a new label.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON values.")
@click.option("--no-header", is_flag=True, help="Leave out the line naming the columns.")
@click.option(
    "--summary",
    is_flag=True,
    help="End with counts, throughput and latency; exit 1 if no label was seen.",
)
@click.option(
    "--isolation-level",
    type=click.Choice(["read_committed", "read_uncommitted"]),
    default=None,
    help="read_committed shows only labels of committed transactions, as downstream readers "
    "of an exactly-once worker must read [default: read_committed when "
    "SENTISTREAM_PROCESSING_GUARANTEE is exactly-once, else read_uncommitted]",
)
@_connection_options
def tail(
    output_topic: str,
    from_beginning: bool,
    max_messages: int | None,
    timeout: float | None,
    as_json: bool,
    no_header: bool,
    summary: bool,
    isolation_level: str | None,
    connection: KafkaConnection,
) -> None:
    """Print labelled tweets from the output topic as they arrive (Ctrl-C to stop).

    Columns: the label, its probability, where the tweet came from (p2@0: partition 2 of the
    input topic, offset 0), the text. Only labels written after tail starts are shown unless
    --from-beginning is given.
    """
    from kafka import KafkaConsumer

    from sentistream.tail import HEADER, LEGEND, Summary, follow, format_label

    if isolation_level is None:
        guarantee = os.environ.get(ENV_PREFIX + "PROCESSING_GUARANTEE", "").lower()
        isolation_level = "read_committed" if guarantee == "exactly-once" else "read_uncommitted"
    consumer = _connect(
        lambda config: KafkaConsumer(
            output_topic,
            **config,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            isolation_level=isolation_level,
        ),
        connection,
    )
    if not as_json and not no_header:
        _log(LEGEND)
        click.echo(HEADER)
    seen = Summary()

    def emit(value: bytes | None) -> None:
        text = (value or b"").decode("utf-8", "replace") if as_json else format_label(value)
        click.echo(text)
        seen.add(value)

    def poll() -> list[bytes | None]:
        batches = consumer.poll(timeout_ms=500)
        return [record.value for records in batches.values() for record in records]

    if from_beginning:
        hint = f"no labels on {output_topic} yet: is a worker running and a producer sending?"
    else:
        hint = (
            f"no new labels on {output_topic} in {TAIL_HINT_AFTER_S:.0f} s; tail shows labels "
            "written from now on: add --from-beginning to see the earlier ones"
        )
    try:
        follow(
            poll,
            emit,
            max_messages=max_messages,
            idle_timeout_s=timeout,
            hint_after_s=TAIL_HINT_AFTER_S,
            hint=lambda: _log(hint),
        )
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    if summary:
        _log(seen.render())
        if not seen.total:
            sys.exit(1)


@cli.command("create-topics")
@click.option(
    "--partitions",
    type=IntRange(min=1),
    default=3,
    show_default=True,
    help="Partitions of the input and output topics (the most workers that help).",
)
@_setting_option("input_topic")
@_setting_option("output_topic")
@_setting_option("dlq_topic")
@_connection_options
def create_topics(
    partitions: int,
    input_topic: str,
    output_topic: str,
    dlq_topic: str,
    connection: KafkaConnection,
) -> None:
    """Create the input, output and dead-letter topics (those that exist are left alone)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = _connect(
        lambda config: KafkaAdminClient(**config, client_id="sentistream-admin"), connection
    )
    wanted = {input_topic: partitions, output_topic: partitions, dlq_topic: 1}
    try:
        existing = {
            topic["name"]: len(topic["partitions"])
            for topic in admin.describe_topics()
            if topic["name"] in wanted
        }
        missing = {
            name: {"num_partitions": count, "replication_factor": 1}
            for name, count in wanted.items()
            if name not in existing
        }
        if missing:
            admin.create_topics(missing)
            admin.wait_for_topics(list(missing), timeout_ms=30_000)
    except KafkaError as exc:
        raise click.ClickException(
            f"creating topics on {connection.bootstrap_servers}: {exc}"
        ) from exc
    finally:
        admin.close()
    for name, count in wanted.items():
        if name in missing:
            _log(f"{name}: created ({_partitions(count)})")
            continue
        _log(f"{name}: exists ({_partitions(existing[name])})")
        if name != dlq_topic and existing[name] != count:
            _log(
                f"warning: {name} has {_partitions(existing[name])}, not the {count} asked for; "
                f"it was left as it is (at most {existing[name]} workers share it). Kafka can "
                f"add partitions (kafka-topics.sh --alter --topic {name} --partitions {count}), "
                "which moves keys to other partitions"
            )


def _partitions(count: int) -> str:
    return f"{count} partition" + ("" if count == 1 else "s")


@cli.command()
@settings_options(WorkerSettings, ENV_PREFIX, defaults={"model_dir": DEFAULT_MODEL_DIR})
def worker(**flags: Any) -> None:
    """Consume tweets from Kafka, label them with the ONNX model, publish the labels."""
    import logging

    settings = build_settings(WorkerSettings, flags)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # run_worker sets kafka-python's own logger level (quiet unless --log-level DEBUG).
    from sentistream.manifest import ManifestError
    from sentistream.worker.app.main import run_worker

    try:
        code = run_worker(settings)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


@cli.command()
@_model_option
@click.option(
    "--extra-model-dir",
    "extra_model_dirs",
    multiple=True,
    type=_existing_dir,
    help="Another model folder measured the same way (repeat for more), e.g. the int8 one.",
)
@click.option(
    "--data",
    type=_existing_file,
    default=PROJECT_ROOT.parent / "shared/data/sentiment140-100k/sentiment140-100k.csv",
    show_default=True,
    help="Tweets to run (Sentiment140 layout).",
)
@click.option(
    "--tweets",
    type=IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Tweets in each end-to-end backlog (kcat produces them before the clock starts).",
)
@click.option(
    "--ceiling-tweets",
    type=IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Tweets for the ONNX Runtime ceiling and the per-stage costs.",
)
@click.option(
    "--batch-sizes",
    default="1,8,32,128,256,512",
    show_default=True,
    help="Comma-separated batch sizes for the ONNX Runtime ceiling.",
)
@click.option(
    "--bucket-size",
    type=IntRange(min=1),
    default=32,
    show_default=True,
    help="Length-bucket size for the bucketed ceiling (the worker's default).",
)
@click.option(
    "--kafka-client",
    "kafka_clients",
    multiple=True,
    type=click.Choice([*KAFKA_CLIENTS, "both"]),
    default=("kafka-python",),
    show_default=True,
    help="Kafka client(s) of the worker to measure end to end (repeatable; both: each).",
)
@click.option(
    "--fractions",
    default="0.1,0.5,0.9",
    show_default=True,
    help="Paced loads, as fractions of the backlog's throughput.",
)
@click.option(
    "--keras-dir",
    "--keras-model",
    "keras_dir",
    cls=Option,
    aliases=["--keras-model"],
    type=_existing_dir,
    default=None,
    help="Keras artifact folder for the notebook baseline (needs TensorFlow).",
)
@click.option(
    "--baseline-tweets",
    type=IntRange(min=1),
    default=500,
    show_default=True,
    help="Tweets for the one-at-a-time baselines.",
)
@click.option("--skip-kafka", is_flag=True, help="Only the inference measurements.")
@click.option(
    "--scale-out/--no-scale-out",
    default=True,
    show_default=True,
    help="Also one and two workers in one group (first model).",
)
@click.option(
    "--latency-seconds",
    type=FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="How long each paced latency run lasts.",
)
@click.option(
    "--repeats",
    type=IntRange(min=1),
    default=2,
    show_default=True,
    help="Ceiling and stage timings are the best of this many runs.",
)
@click.option(
    "--worker-setting",
    "worker_settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Worker settings for the end-to-end runs, e.g. max_batch_size=256.",
)
@click.option(
    "--worker-env",
    "worker_env",
    multiple=True,
    metavar="NAME=VALUE",
    help="Extra environment of the worker processes, e.g. PYTHONPATH=/tmp/old/src to "
    "measure another checkout's worker with the same load.",
)
@click.option(
    "--out",
    type=_out_dir,
    default=Path("runs/bench"),
    show_default=True,
    help="Folder for bench.md, bench.json and the figures.",
)
@_connection_options_with({"bootstrap_servers": None})
def bench(
    model_dir: Path,
    extra_model_dirs: tuple[Path, ...],
    data: Path,
    tweets: int,
    ceiling_tweets: int,
    batch_sizes: str,
    bucket_size: int,
    kafka_clients: tuple[str, ...],
    fractions: str,
    keras_dir: Path | None,
    baseline_tweets: int,
    skip_kafka: bool,
    scale_out: bool,
    latency_seconds: float,
    repeats: int,
    worker_settings: tuple[str, ...],
    worker_env: tuple[str, ...],
    out: Path,
    connection: KafkaConnection,
) -> None:
    """Measure the ONNX ceiling, per-stage costs, and the worker end to end through Kafka.

    The load comes from kcat (librdkafka), never from this process: backlogs are produced
    before the clock starts, paced loads by a separate process whose CPU is reported.

    Without --bootstrap-servers (or SENTISTREAM_BOOTSTRAP_SERVERS) a throw-away PLAINTEXT
    broker is started and its CPU reported. With it, every client of the run (kafka-python,
    kcat, the workers) uses the connection settings below; kcat gets them in a configuration
    file only its owner can read, the workers as SENTISTREAM_* variables.
    """
    from datetime import UTC, datetime

    from sentistream.bench.kcat import KcatError
    from sentistream.bench.kcat_config import KcatConfigError
    from sentistream.bench.plots import latency_distribution, throughput_by_batch
    from sentistream.bench.raw import sample
    from sentistream.bench.report import load_average, machine, write_report
    from sentistream.bench.run import BenchConfig, expand_kafka_clients, run_bench
    from sentistream.dataset import load_labelled
    from sentistream.worker.backends import ClientMissing, kafka_client

    clients = expand_kafka_clients(kafka_clients)
    try:
        for name in clients:
            kafka_client(name)  # type: ignore[arg-type]  # the click.Choice above
    except ClientMissing as exc:
        raise click.UsageError(str(exc)) from None
    cluster = None if skip_kafka else _bench_cluster(connection)
    config = BenchConfig(
        model_dirs=[model_dir, *extra_model_dirs],
        texts=sample(load_labelled(data).texts, tweets),
        ceiling_tweets=ceiling_tweets,
        batch_sizes=[int(b) for b in batch_sizes.split(",")],
        bucket_size=bucket_size,
        kafka_clients=clients,
        fractions=[float(f) for f in fractions.split(",")],
        latency_seconds=latency_seconds,
        scale_out=scale_out,
        skip_kafka=skip_kafka,
        connection=cluster,
        worker_settings=dict(item.split("=", 1) for item in worker_settings),
        worker_env=dict(item.split("=", 1) for item in worker_env),
        keras_dir=keras_dir,
        baseline_tweets=baseline_tweets,
        repeats=repeats,
    )
    started = load_average()
    try:
        result = run_bench(config, _log)
    except (KcatError, KcatConfigError, ConnectionSettingsError) as exc:
        raise click.ClickException(str(exc)) from exc
    result |= {
        "command": "sentistream bench " + " ".join(sys.argv[2:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_average_start": started,
        "load_average_end": load_average(),
    }
    samples = result["samples"]
    written = write_report(out, result, bucket_size=bucket_size)
    throughput_by_batch(written["models"], out / "throughput-by-batch.png")
    if not skip_kafka:
        latency_distribution(written["models"], samples, out / "latency-distribution.png")
    click.echo((out / "bench.md").read_text())


def _bench_cluster(connection: KafkaConnection) -> KafkaConnection | None:
    """The cluster ``bench`` was pointed at, checked by connecting to it (one line saying why
    not, before anything is measured); None when it was not, for a throw-away broker."""
    from click.core import ParameterSource
    from kafka import KafkaAdminClient

    source = click.get_current_context().get_parameter_source("bootstrap_servers")
    if source in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
        if connection.security_protocol != "PLAINTEXT":
            raise click.UsageError(
                f"--security-protocol {connection.security_protocol} needs --bootstrap-servers "
                "(or SENTISTREAM_BOOTSTRAP_SERVERS): without it bench starts a throw-away "
                "PLAINTEXT broker"
            )
        return None
    _connect(
        lambda config: KafkaAdminClient(**config, client_id="sentistream-bench"), connection
    ).close()
    return connection


def _load_model(model_dir: Path) -> SentimentModel:
    from sentistream.inference import SentimentModel
    from sentistream.manifest import ManifestError

    try:
        return SentimentModel.load(model_dir)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc


def _connect(make: Callable[[dict[str, Any]], T], connection: KafkaConnection) -> T:
    """A kafka-python client from ``make(config)``, or one line that says why there is none:
    settings that cannot work, a broker that does not answer, a refused login or TLS
    handshake.

    kafka-python logs every failed connection attempt itself; those lines are dropped here
    (the error says it once) and its log records do not reach the terminal.
    """
    from kafka.errors import KafkaError

    from sentistream.connection import FailureWatch

    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(logging.NullHandler())
    kafka_log.propagate = False
    try:
        config = connection.client_config()
    except ConnectionSettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    config["bootstrap_timeout_ms"] = int(CONNECT_TIMEOUT_S * 1000)
    servers = connection.bootstrap_servers
    with FailureWatch() as watch:
        try:
            return make(config)
        except KafkaError as exc:
            why = watch.explain(connection)
            if why is not None:
                raise click.ClickException(f"cannot connect to Kafka at {servers}: {why}") from exc
            raise click.ClickException(
                f"cannot reach Kafka at {servers} within {CONNECT_TIMEOUT_S:g} s "
                f"({_probe(servers)}); check --bootstrap-servers or "
                f"{ENV_PREFIX}BOOTSTRAP_SERVERS, and that the broker is running"
            ) from exc


def _probe(bootstrap_servers: str) -> str:
    """Why the first bootstrap server does not answer, as the operating system says it."""
    server = bootstrap_servers.partition(",")[0].strip()
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host or server, int(port or 9092)), timeout=1):
            return f"{server} accepts connections but does not answer as a Kafka broker"
    except ValueError:
        return f"{server}: not host:port"
    except OSError as exc:
        return f"{server}: {(exc.strerror or str(exc)).lower()}"


def _log(message: str) -> None:
    click.echo(message, err=True)


cli.add_command(relabel)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
