"""One benchmark run: every measurement for every model folder and Kafka client, in order.

For each model folder: the ONNX Runtime ceiling (one thread and all threads, one call per
batch and length buckets), the per-stage costs, the one-tweet-at-a-time baselines, then for
each Kafka client the worker end to end (backlog, then paced loads). Last, scale-out with the
first model: one and two workers in one group. :mod:`.report` writes the tables and
:mod:`.plots` the figures from the one result this returns.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sentistream.bench.capacity import CapacitySettings
from sentistream.bench.e2e import (
    Broker,
    EndToEnd,
    Session,
    as_json,
    local_broker,
    run_end_to_end,
    run_scale_out,
)
from sentistream.bench.raw import (
    keras_one_at_a_time,
    mean_tokens,
    ort_ceiling,
    ort_one_at_a_time,
    sample,
)
from sentistream.bench.stages import measure_stages
from sentistream.connection import KafkaConnection
from sentistream.inference import SentimentModel
from sentistream.worker.settings import KAFKA_CLIENTS

__all__ = ["BenchConfig", "expand_kafka_clients", "run_bench"]


def expand_kafka_clients(names: Sequence[str]) -> tuple[str, ...]:
    """``bench --kafka-client`` values, ``both`` expanded, each client once, in order."""
    clients: list[str] = []
    for name in names:
        for client in KAFKA_CLIENTS if name == "both" else (name,):
            if client not in clients:
                clients.append(client)
    return tuple(clients)


Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    model_dirs: Sequence[Path]
    texts: Sequence[str]
    """The tweets of the backlog (and, cut to ``ceiling_tweets``, of the ceiling)."""
    ceiling_tweets: int = 10_000
    batch_sizes: Sequence[int] = (1, 8, 32, 128, 256, 512)
    bucket_size: int = 32
    kafka_clients: Sequence[str] = ("kafka-python",)
    fractions: Sequence[float] = (0.1, 0.5, 0.9)
    latency_seconds: float = 10.0
    capacity: CapacitySettings | None = field(default_factory=CapacitySettings)
    """The steady-state capacity search after the paced runs; None: no search."""
    scale_out: bool = True
    warm_up_seconds: float = 0.0
    """Paced load through a worker before anything is measured (a throw-away broker only)."""
    skip_kafka: bool = False
    connection: KafkaConnection | None = None
    """The cluster to measure through (servers, TLS, SASL); None: a throw-away local broker."""
    worker_settings: dict[str, str] = field(default_factory=dict)
    worker_env: dict[str, str] = field(default_factory=dict)
    """Extra environment of the worker processes (``PYTHONPATH`` of another checkout)."""
    keras_dir: Path | None = None
    baseline_tweets: int = 500
    repeats: int = 2
    peers: bool = False
    """Also what users would write instead (:mod:`.peers`), first model, first ``peer_tweets``."""
    peer_tweets: int = 20_000
    quix_python: Path | None = None
    """The bench-only virtualenv's interpreter for the Quix Streams app (None: not run)."""
    quix_missing: str = "no --quix-python given"


def _shown(folder: Path) -> str:
    """``folder`` relative to the working directory when it is under it."""
    try:
        return str(folder.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def _model_info(model: SentimentModel, folder: Path) -> dict[str, Any]:
    assert model.manifest.onnx is not None
    return {
        "folder": _shown(folder),
        "name": model.manifest.name,
        "version": model.manifest.version,
        "sha256": model.sha256,
        "lstm_op": model.manifest.onnx.lstm_op,
        "quantization": model.manifest.onnx.quantization,
    }


@contextlib.contextmanager
def _broker(config: BenchConfig, log: Log) -> Iterator[Broker | None]:
    if config.skip_kafka:
        yield None
    elif config.connection is not None:
        yield Broker(config.connection, None)
    else:
        with local_broker(log) as broker:
            yield broker


def run_bench(config: BenchConfig, log: Log) -> dict[str, Any]:
    """Every measurement of the run, as JSON data (latency samples under ``samples``)."""
    from sentistream.bench.kcat import kcat

    if not config.skip_kafka:
        kcat()  # fail before anything is measured, with the install hint
    result: dict[str, Any] = {
        "models": [],
        "scale_out": [],
        "samples": {},
        "worker_settings": dict(config.worker_settings),
        "worker_env": dict(config.worker_env),
    }
    with _broker(config, log) as broker:
        session = Session(broker) if broker is not None else None
        try:
            if session is not None and config.connection is None and config.warm_up_seconds:
                result["broker_warm_up_s"] = _warm_up(config, session, log)
            for folder in config.model_dirs:
                result["models"].append(_one_model(config, folder, session, result, log))
            if session is not None and config.peers:
                result["peers"] = _peers(config, session, log)
            if session is not None and config.scale_out:
                for workers in (1, 2):
                    scale = run_scale_out(
                        session,
                        config.model_dirs[0],
                        config.texts,
                        workers=workers,
                        worker_settings=config.worker_settings,
                        worker_env=config.worker_env,
                        log=log,
                    )
                    result["scale_out"].append(asdict(scale))
        finally:
            if session is not None:
                session.close()
    return result


def _warm_up(config: BenchConfig, session: Session, log: Log) -> float:
    """A backlog and a paced load through one worker, thrown away: the throw-away broker's
    JVM compiles its request paths meanwhile, so the broker's CPU measured afterwards is
    about the clients, not the JIT (BENCHMARKS.md, "Broker warm-up")."""
    log(f"warming the broker up: a backlog, then {config.warm_up_seconds:g} s of paced load")
    started = time.monotonic()
    run_end_to_end(
        session,
        config.model_dirs[0],
        config.texts[:20_000],
        fractions=(0.2,),
        latency_seconds=config.warm_up_seconds,
        worker_settings=config.worker_settings,
        worker_env=config.worker_env,
        log=lambda line: log(f"  (warm-up) {line}"),
    )
    return round(time.monotonic() - started, 1)


def _peers(config: BenchConfig, session: Session, log: Log) -> dict[str, Any]:
    from sentistream.bench.peers.measure import run_peers

    texts = config.texts[: config.peer_tweets]
    log(f"what users would write instead: {len(texts):,} tweets, {config.model_dirs[0]}")
    return run_peers(
        session,
        config.model_dirs[0],
        texts,
        quix_python=config.quix_python,
        quix_missing=config.quix_missing,
        log=log,
    )


def _one_model(
    config: BenchConfig,
    folder: Path,
    session: Session | None,
    result: dict[str, Any],
    log: Log,
) -> dict[str, Any]:
    ceiling_texts = sample(config.texts, min(config.ceiling_tweets, len(config.texts)))
    one = SentimentModel.load(folder, threads=1)
    ids = [one.encode(t) for t in ceiling_texts]
    log(f"{folder}: ceiling over {len(ids):,} tweets ({mean_tokens(ids):.1f} tokens on average)")
    ceiling = []
    every = SentimentModel.load(folder, threads=0)
    for threads, model in (("1 thread", one), (f"all threads ({os.cpu_count()})", every)):
        for bucket in (0, config.bucket_size):
            sizes = [b for b in config.batch_sizes if not bucket or b > bucket]
            for row in ort_ceiling(model, ids, sizes, bucket_size=bucket, repeats=config.repeats):
                ceiling.append(asdict(row) | {"threads": threads, "per_second": row.per_second})
                log(
                    f"  {threads}, {row.name}, batch {row.batch_size}: "
                    f"{row.per_second:,.0f} tweets/s"
                )
    log(f"{folder}: per-stage cost")
    stages = measure_stages(
        one,
        ceiling_texts,
        bucket_size=config.bucket_size,
        connection=session.broker.connection if session is not None else None,
        repeats=config.repeats,
    )
    baselines = [ort_one_at_a_time(one, ids[: config.baseline_tweets * 4])]
    if config.keras_dir is not None and folder == config.model_dirs[0]:
        baselines.append(
            keras_one_at_a_time(config.keras_dir, ceiling_texts[: config.baseline_tweets])
        )
    end_to_end: list[EndToEnd] = []
    if session is not None:
        for client in config.kafka_clients:
            log(f"{folder}: end to end with {client}")
            end_to_end.append(
                run_end_to_end(
                    session,
                    folder,
                    config.texts,
                    fractions=config.fractions,
                    latency_seconds=config.latency_seconds,
                    kafka_client=client,
                    worker_settings=config.worker_settings,
                    worker_env=config.worker_env,
                    capacity=config.capacity,
                    log=log,
                )
            )
    for run in end_to_end:
        result["samples"][f"{_shown(folder)}|{run.kafka_client}"] = {
            f"{r.fraction}": r.samples_ms for r in run.latency
        }
    return {
        "model": _model_info(one, folder),
        "mean_tokens": mean_tokens(ids),
        "ceiling": ceiling,
        "stages": [
            {
                "stage": s.stage,
                "tweets": s.tweets,
                "us_per_tweet": s.us_per_tweet,
                "cpu_us_per_tweet": s.cpu_us_per_tweet,
            }
            for s in stages
        ],
        "baselines": [asdict(b) | {"per_second": b.per_second} for b in baselines],
        "end_to_end": [as_json(run) for run in end_to_end],
    }
