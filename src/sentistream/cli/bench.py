"""The command that measures: bench."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from sentistream.cli.connect import connect
from sentistream.cli.options import (
    PROJECT_ROOT,
    connection_options_with,
    existing_dir,
    existing_file,
    log,
    model_option,
    out_dir,
)
from sentistream.cli.settings_options import FloatRange, IntRange, Option
from sentistream.connection import ConnectionSettingsError, KafkaConnection
from sentistream.worker.settings import KAFKA_CLIENTS

__all__ = ["bench"]

QUIX_PYTHON = Path(".cache/quix-venv/bin/python")
"""Where ``make quix-venv`` puts the Quix app's interpreter, under the project's root."""


@click.command()
@model_option
@click.option(
    "--extra-model-dir",
    "extra_model_dirs",
    multiple=True,
    type=existing_dir,
    help="Another model folder measured the same way (repeat for more), e.g. the int8 one.",
)
@click.option(
    "--data",
    type=existing_file,
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
    type=existing_dir,
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
    "--warm-up-seconds",
    type=FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Paced load through a worker on the throw-away broker before anything is measured: "
    "a fresh JVM compiles its request paths in its first minute, which its CPU shows "
    "(0: none; not run against --bootstrap-servers).",
)
@click.option(
    "--latency-seconds",
    type=FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="How long each paced latency run lasts.",
)
@click.option(
    "--capacity/--no-capacity",
    default=True,
    show_default=True,
    help="Search for the steady-state capacity: the highest paced rate with p99 within "
    "--capacity-p99-ms (each model and client, after the paced runs).",
)
@click.option(
    "--capacity-seconds",
    type=FloatRange(min=0, min_open=True),
    default=8.0,
    show_default=True,
    help="How long each capacity probe (a paced run) lasts.",
)
@click.option(
    "--capacity-p99-ms",
    type=FloatRange(min=0, min_open=True),
    default=50.0,
    show_default=True,
    help="The p99 latency a rate must stay within to count as sustained.",
)
@click.option(
    "--capacity-probes",
    type=IntRange(min=1),
    default=5,
    show_default=True,
    help="At most this many probes beyond the --fractions runs (the search stops sooner "
    "once the rate is bracketed within 5 % of the backlog peak).",
)
@click.option(
    "--repeats",
    type=IntRange(min=1),
    default=2,
    show_default=True,
    help="Ceiling and stage timings are the best of this many runs.",
)
@click.option(
    "--peers/--no-peers",
    default=True,
    show_default=True,
    help="Also what users would write instead (first model): a plain kafka-python loop and a "
    "Quix Streams app, each labelling one tweet at a time, measured as the worker's backlog.",
)
@click.option(
    "--peer-tweets",
    type=IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Tweets in each peer's backlog (the first of --tweets; the peers are slow).",
)
@click.option(
    "--quix-python",
    type=existing_file,
    default=None,
    help="Python of the bench-only virtualenv with quixstreams (make quix-venv) for the Quix "
    f"app [default: {QUIX_PYTHON} when it exists; else the Quix app is not run].",
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
    type=out_dir,
    default=Path("runs/bench"),
    show_default=True,
    help="Folder for bench.md, bench.json and the figures.",
)
@connection_options_with({"bootstrap_servers": None})
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
    warm_up_seconds: float,
    latency_seconds: float,
    capacity: bool,
    capacity_seconds: float,
    capacity_p99_ms: float,
    capacity_probes: int,
    repeats: int,
    peers: bool,
    peer_tweets: int,
    quix_python: Path | None,
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
    from sentistream.bench.capacity import CapacitySettings
    from sentistream.bench.kcat import KcatError
    from sentistream.bench.kcat_config import KcatConfigError
    from sentistream.bench.raw import sample
    from sentistream.bench.report import load_average
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
        capacity=CapacitySettings(
            bound_ms=capacity_p99_ms, seconds=capacity_seconds, max_probes=capacity_probes
        )
        if capacity
        else None,
        scale_out=scale_out,
        warm_up_seconds=warm_up_seconds,
        skip_kafka=skip_kafka,
        connection=cluster,
        worker_settings=dict(item.split("=", 1) for item in worker_settings),
        worker_env=dict(item.split("=", 1) for item in worker_env),
        keras_dir=keras_dir,
        baseline_tweets=baseline_tweets,
        repeats=repeats,
        peers=peers,
        peer_tweets=peer_tweets,
        **_quix(quix_python),
    )
    started = load_average()
    try:
        result = run_bench(config, log)
    except (KcatError, KcatConfigError, ConnectionSettingsError) as exc:
        raise click.ClickException(str(exc)) from exc
    _report(out, result, started, bucket_size=bucket_size, skip_kafka=skip_kafka)
    click.echo((out / "bench.md").read_text())


def _quix(given: Path | None) -> dict[str, Any]:
    """The Quix app's interpreter (``quix_python``) or why there is none (``quix_missing``)."""
    if given is not None:
        return {"quix_python": given}
    found = PROJECT_ROOT / QUIX_PYTHON
    if found.is_file():
        return {"quix_python": found}
    return {
        "quix_python": None,
        "quix_missing": f"no --quix-python given and no {found} (make quix-venv builds it)",
    }


def _report(
    out: Path,
    result: dict[str, Any],
    started: list[float],
    *,
    bucket_size: int,
    skip_kafka: bool,
) -> None:
    """bench.md, bench.json and the figures in ``out``, with how and where the run was made."""
    from datetime import UTC, datetime

    from sentistream.bench.plots import (
        capacity_probes,
        latency_distribution,
        throughput_by_batch,
    )
    from sentistream.bench.report import load_average, machine, write_report

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
        capacity_probes(written["models"], out / "capacity.png")
    if written.get("peer_comparison"):
        from sentistream.bench.peers.plot import peers_chart

        peers_chart(written["peer_comparison"], out / "peers.png")


def _bench_cluster(connection: KafkaConnection) -> KafkaConnection | None:
    """The cluster ``bench`` was pointed at, checked by connecting to it (one line saying why
    not, before anything is measured); None when it was not, for a throw-away broker."""
    from click.core import ParameterSource

    from sentistream.worker.backends.kafka_python.tools import open_admin

    source = click.get_current_context().get_parameter_source("bootstrap_servers")
    if source in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
        if connection.security_protocol != "PLAINTEXT":
            raise click.UsageError(
                f"--security-protocol {connection.security_protocol} needs --bootstrap-servers "
                "(or SENTISTREAM_BOOTSTRAP_SERVERS): without it bench starts a throw-away "
                "PLAINTEXT broker"
            )
        return None
    connect(lambda config: open_admin(config, "sentistream-bench"), connection).close()
    return connection
