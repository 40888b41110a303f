"""End to end through a real Kafka broker and real ``sentistream worker`` processes.

How each figure is taken (the load never comes from this process):

* **backlog**: kcat produces the tweets in large batches *before* the worker starts; the
  worker then drains them. Throughput = distinct labels on the output topic / time between
  the first and the last label the broker stored (the output topic keeps the broker's append
  time). The worker's own ``sentistream_records_labeled_total`` is read too, as a cross-check.
* **latency** at fractions of that peak: a separate process (:mod:`sentistream.bench.pace`)
  feeds kcat at a steady rate; latency = broker append time of the label - kcat's produce
  time of the tweet (the label's ``event_time``).
* **steady-state capacity**: the highest paced rate whose p99 stays within a bound (50 ms), by
  a short search over rates (:mod:`.capacity`) seeded with the paced runs above; each probe
  is one more paced run, read back before the next.
* **CPU seconds** of the worker, the broker and the load generator for every run, from
  ``/proc`` (the pacer reports its own and kcat's).
* **scale-out**: one, then two workers in one group, started on empty topics and given
  their partitions before kcat writes the backlog.

Everything that touches Kafka uses the run's one
:class:`~sentistream.connection.KafkaConnection` (servers, TLS, SASL): the kafka-python
clients its client configuration, kcat a configuration file made from it
(:mod:`.kcat_config`), the workers its ``SENTISTREAM_*`` variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from sentistream.bench import kcat, kcat_check
from sentistream.bench.capacity import Capacity, CapacitySettings, Measured, search
from sentistream.bench.kcat_config import KcatConnection, kcat_connection
from sentistream.bench.labels import Label, count_labels, latencies_ms, parse_labels
from sentistream.bench.procstat import CpuMeter, peak_rss_mb
from sentistream.bench.raw import sample
from sentistream.bench.stages import payloads
from sentistream.bench.workerproc import BenchWorker, free_ports
from sentistream.connection import KafkaConnection
from sentistream.tail import quantile

__all__ = [
    "Backlog",
    "Broker",
    "EndToEnd",
    "LatencyRun",
    "ScaleOut",
    "Session",
    "local_broker",
    "pace_command",
    "plaintext",
    "run_end_to_end",
    "run_scale_out",
]

REPO_ROOT = Path(__file__).resolve().parents[3]
KAFKA_SH = REPO_ROOT / "tools" / "kafka" / "kafka.sh"
PARTITIONS = 4
LABEL_FORMAT = "%T\t%s\n"
READ_BACK_MARGIN_MS = 2_000
"""A capacity probe reads the labels stored from this long before it began (clock skew; a
label missing from that read means a whole read)."""

Log = Callable[[str], None]


@dataclass(frozen=True)
class Broker:
    connection: KafkaConnection
    pid: int | None
    """The broker's process id when it runs on this machine (for its CPU seconds)."""

    @property
    def bootstrap(self) -> str:
        return self.connection.bootstrap_servers


def plaintext(bootstrap: str) -> KafkaConnection:
    """PLAINTEXT to ``bootstrap``, whatever the ``SENTISTREAM_*`` variables say (a throw-away
    broker listens in plaintext only)."""
    return KafkaConnection.model_construct(bootstrap_servers=bootstrap)


@contextlib.contextmanager
def local_broker(log: Log) -> Iterator[Broker]:
    """A throw-away broker from tools/kafka/kafka.sh on free ports."""
    port, controller = free_ports(2)
    with tempfile.TemporaryDirectory(prefix="sentistream-bench-") as state:
        env = {
            **os.environ,
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller),
            "KAFKA_STATE_DIR": state,
        }
        log(f"starting a Kafka broker on 127.0.0.1:{port}")
        subprocess.run(
            ["bash", str(KAFKA_SH), "start"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        try:
            pid = int((Path(state) / "kafka.pid").read_text().strip())
            yield Broker(plaintext(f"127.0.0.1:{port}"), pid)
        finally:
            subprocess.run(
                ["bash", str(KAFKA_SH), "stop"], env=env, check=False, stdout=subprocess.DEVNULL
            )


@dataclass(frozen=True)
class Backlog:
    tweets: int
    labels_on_topic: int
    duplicates: int
    worker_labeled_total: float
    """The worker's own counter, for comparison only: the figure is ``labels_on_topic``."""
    span_s: float
    throughput_per_s: float
    fill_seconds: float
    mean_batch: float
    cpu_s: dict[str, float]


@dataclass(frozen=True)
class LatencyRun:
    fraction: float
    offered_per_s: float
    tweets: int
    sent_per_s: float
    labels_on_topic: int
    latency_ms: dict[str, float]
    mean_batch: float
    cpu_s: dict[str, float]
    samples_ms: list[float] = field(repr=False)


@dataclass(frozen=True)
class EndToEnd:
    model_dir: str
    kafka_client: str
    topics: dict[str, str]
    worker_settings: dict[str, str]
    start_to_ready_s: float
    peak_rss_mb: float
    backlog: Backlog
    latency: list[LatencyRun]
    capacity: Capacity | None = None


@dataclass(frozen=True)
class ScaleOut:
    workers: int
    partitions: int
    tweets: int
    labels_on_topic: int
    throughput_per_s: float
    cpu_s: dict[str, float]


class Session:
    """Topics, output reading and progress on one broker; kcat's configuration file for it
    exists until :meth:`close`."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._client_config = broker.connection.client_config()
        self._cleanup = contextlib.ExitStack()
        try:
            self.kcat = self._cleanup.enter_context(kcat_connection(broker.connection))
            kcat_check.check(self.kcat)
            self._watch = KafkaConsumer(**self._client_config, group_id=None)
        except BaseException:
            self._cleanup.close()
            raise
        self._cleanup.callback(self._watch.close)

    def close(self) -> None:
        self._cleanup.close()

    def create_topics(self, prefix: str) -> dict[str, str]:
        run = f"{prefix}-{uuid.uuid4().hex[:8]}"
        topics = {"input": f"{run}-in", "output": f"{run}-out", "dlq": f"{run}-dlq"}
        admin = KafkaAdminClient(**self._client_config)
        try:
            admin.create_topics(
                {
                    topics["input"]: {"num_partitions": PARTITIONS, "replication_factor": 1},
                    topics["output"]: {
                        "num_partitions": PARTITIONS,
                        "replication_factor": 1,
                        "configs": {"message.timestamp.type": "LogAppendTime"},
                    },
                    topics["dlq"]: {"num_partitions": 1, "replication_factor": 1},
                }
            )
            admin.wait_for_topics(list(topics.values()), timeout_ms=30_000)
        finally:
            admin.close()
        return topics

    def stored(self, topic: str) -> int:
        """Records stored in ``topic`` (the sum of its partitions' end offsets)."""
        partitions = self._watch.partitions_for_topic(topic) or set()
        ends = self._watch.end_offsets([TopicPartition(topic, p) for p in partitions])
        return int(sum(ends.values()))

    def wait_labels(self, topics: Mapping[str, str], count: int, timeout_s: float) -> None:
        """Until ``count`` labels are stored; any dead letter means a broken run."""
        deadline = time.monotonic() + timeout_s
        while (stored := self.stored(topics["output"])) < count:
            if self.stored(topics["dlq"]):
                raise RuntimeError(f"the worker dead-lettered tweets: see {topics['dlq']}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {stored} of {count} labels arrived in {timeout_s} s")
            time.sleep(0.2)

    def labels(self, topic: str, since_ms: int | None = None) -> list[Label]:
        """The labels on ``topic``: all, or those stored from ``since_ms`` (epoch ms) on."""
        start = "beginning" if since_ms is None else f"s@{since_ms}"
        return parse_labels(kcat.consume_lines(self.kcat, topic, LABEL_FORMAT, start=start))

    def fill(self, topic: str, items: Sequence[tuple[bytes, bytes]]) -> tuple[float, float]:
        """kcat produces ``items`` in large batches; (seconds, kcat's CPU seconds)."""
        with tempfile.TemporaryDirectory(prefix="sentistream-bench-") as folder:
            path = Path(folder) / "payloads.tsv"
            kcat.write_payload_file(path, items)
            before = _children_cpu()
            started = time.monotonic()
            kcat.produce_file(self.kcat, topic, path)
            return time.monotonic() - started, _children_cpu() - before

    def meter(self, workers: Mapping[str, int]) -> CpuMeter:
        pids = dict(workers)
        if self.broker.pid is not None:
            pids["broker"] = self.broker.pid
        return CpuMeter(pids)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _mean_batch(worker: BenchWorker, before: tuple[float, float]) -> tuple[float, float, float]:
    total = worker.metric_sum("sentistream_batch_size_records_sum")
    count = worker.metric_sum("sentistream_batch_size_records_count")
    calls = count - before[1]
    return (total - before[0]) / calls if calls else 0.0, total, count


def run_end_to_end(
    session: Session,
    model_dir: Path,
    texts: Sequence[str],
    *,
    fractions: Sequence[float] = (0.1, 0.5, 0.9),
    latency_seconds: float = 10.0,
    kafka_client: str = "kafka-python",
    worker_settings: Mapping[str, str] | None = None,
    worker_env: Mapping[str, str] | None = None,
    capacity: CapacitySettings | None = None,
    log: Log = print,
) -> EndToEnd:
    """Backlog, then paced runs at ``fractions`` of the backlog's throughput, then (with
    ``capacity``) the search for the steady-state capacity, one worker."""
    settings = dict(worker_settings or {})
    if kafka_client != "kafka-python":
        settings["kafka_client"] = kafka_client
    topics = session.create_topics("bench")
    backlog_items = payloads(texts, "backlog-")
    log(f"kcat: producing a backlog of {len(texts):,} tweets into {topics['input']}")
    fill_s, fill_cpu = session.fill(topics["input"], backlog_items)
    log(f"  produced in {fill_s:.2f} s ({fill_cpu:.2f} CPU s)")

    worker = BenchWorker(
        session.broker.connection,
        model_dir,
        topics,
        f"g-{topics['input']}",
        settings,
        dict(worker_env or {}),
    )
    worker.start()
    try:
        log(f"worker ready in {worker.start_to_ready_s:.2f} s; draining the backlog")
        backlog, batch_totals = _drain_backlog(
            session, worker, topics, texts, backlog_items, fill_s, fill_cpu, log
        )
        runs: list[LatencyRun] = []
        expected = len(texts)
        for fraction in fractions:
            rate = backlog.throughput_per_s * fraction
            items = payloads(sample(texts, max(1, int(rate * latency_seconds))), f"lat{fraction}-")
            expected += len(items)
            run, batch_totals = _paced(
                session, worker, topics, items, rate, fraction, expected, batch_totals, log
            )
            runs.append(run)
        labels = session.labels(topics["output"])
        runs = [_with_latencies(run, labels) for run in runs]
        for run in runs:
            log(
                f"  {run.fraction:.0%} of peak ({run.offered_per_s:,.0f}/s): "
                + ", ".join(f"{k} {v:.1f} ms" for k, v in run.latency_ms.items())
            )
        found = None
        if capacity is not None:
            paced = _Paced(session, worker, topics, texts, expected, batch_totals, log)
            found = _search_capacity(paced, backlog.throughput_per_s, runs, capacity, log)
        rss = peak_rss_mb(worker.pid)
    finally:
        worker.stop()
    return EndToEnd(
        model_dir=str(model_dir),
        kafka_client=kafka_client,
        topics=topics,
        worker_settings=settings,
        start_to_ready_s=worker.start_to_ready_s,
        peak_rss_mb=rss,
        backlog=backlog,
        latency=runs,
        capacity=found,
    )


def _drain_backlog(
    session: Session,
    worker: BenchWorker,
    topics: dict[str, str],
    texts: Sequence[str],
    backlog_items: Sequence[tuple[bytes, bytes]],
    fill_s: float,
    fill_cpu: float,
    log: Log,
) -> tuple[Backlog, Sequence[float]]:
    """Time the worker through the backlog already on the input topic; the figures and the
    batch counters' totals so far (the paced runs' means start from them)."""
    meter = session.meter({"worker": worker.pid}).start()
    session.wait_labels(topics, len(texts), timeout_s=600)
    cpu = meter.stop() | {"load generator (kcat, before the clock)": round(fill_cpu, 3)}
    mean_batch, *batch_totals = _mean_batch(worker, (0.0, 0.0))
    labeled_total = worker.metric_sum("sentistream_records_labeled_total")
    count = count_labels(session.labels(topics["output"]), {k.decode() for k, _ in backlog_items})
    if count.missing or session.stored(topics["dlq"]):
        raise RuntimeError(f"backlog: {count.missing} labels missing, see {topics['dlq']}")
    log(
        f"  {count.distinct:,} labels on the output topic in {count.span_s:.2f} s = "
        f"{count.throughput_per_s:,.0f} tweets/s (worker's counter: {labeled_total:,.0f}); "
        f"CPU s {cpu}"
    )
    backlog = Backlog(
        tweets=len(texts),
        labels_on_topic=count.distinct,
        duplicates=count.duplicates,
        worker_labeled_total=labeled_total,
        span_s=count.span_s,
        throughput_per_s=count.throughput_per_s,
        fill_seconds=fill_s,
        mean_batch=mean_batch,
        cpu_s=cpu,
    )
    return backlog, batch_totals


def _paced(
    session: Session,
    worker: BenchWorker,
    topics: Mapping[str, str],
    items: Sequence[tuple[bytes, bytes]],
    rate: float,
    fraction: float,
    expected: int,
    batch_totals: Sequence[float],
    log: Log,
) -> tuple[LatencyRun, list[float]]:
    log(f"paced load: {len(items):,} tweets at {rate:,.0f}/s ({fraction:.0%} of the peak)")
    with tempfile.TemporaryDirectory(prefix="sentistream-bench-") as folder:
        path = Path(folder) / "payloads.tsv"
        kcat.write_payload_file(path, items)
        meter = session.meter({"worker": worker.pid}).start()
        pacer = subprocess.run(
            pace_command(session.kcat, topics["input"], rate, path),
            check=True,
            capture_output=True,
            timeout=len(items) / rate + 300,
        )
        session.wait_labels(topics, expected, timeout_s=300)
        cpu = meter.stop()
    report = json.loads(pacer.stdout.decode().strip().splitlines()[-1])
    cpu |= {
        "load generator (pacer)": report["cpu_s_pacer"],
        "load generator (kcat)": report["cpu_s_kcat"],
    }
    mean_batch, total, count = _mean_batch(worker, (batch_totals[0], batch_totals[1]))
    run = LatencyRun(
        fraction=fraction,
        offered_per_s=rate,
        tweets=len(items),
        sent_per_s=report["sent"] / max(report["seconds"], 1e-3),
        labels_on_topic=0,
        latency_ms={},
        mean_batch=mean_batch,
        cpu_s=cpu,
        samples_ms=[],
    )
    return run, [total, count]


@dataclass
class _Paced:
    """More paced runs on a running worker, each read back at once (capacity probes)."""

    session: Session
    worker: BenchWorker
    topics: Mapping[str, str]
    texts: Sequence[str]
    expected: int
    """Labels the output topic holds once every run so far is labeled."""
    batch_totals: Sequence[float]
    log: Log
    runs: int = 0

    def run(self, rate: float, fraction: float, seconds: float) -> LatencyRun:
        prefix = f"cap{self.runs}-"
        self.runs += 1
        items = payloads(sample(self.texts, max(1, int(rate * seconds))), prefix)
        self.expected += len(items)
        since_ms = int(time.time() * 1000) - READ_BACK_MARGIN_MS
        run, self.batch_totals = _paced(
            self.session,
            self.worker,
            self.topics,
            items,
            rate,
            fraction,
            self.expected,
            self.batch_totals,
            self.log,
        )
        try:  # the labels stored since the run began (the output topic keeps append times)
            return _with_latencies(
                run, self.session.labels(self.topics["output"], since_ms), prefix
            )
        except RuntimeError:  # some missing: the broker's clock is behind this one's
            return _with_latencies(run, self.session.labels(self.topics["output"]), prefix)


def _probe_stats(run: LatencyRun) -> dict[str, Any]:
    return {
        "tweets": run.tweets,
        "sent_per_s": run.sent_per_s,
        "labels_on_topic": run.labels_on_topic,
        "latency_ms": run.latency_ms,
        "mean_batch": run.mean_batch,
        "cpu_s": run.cpu_s,
    }


def _search_capacity(
    paced: _Paced,
    peak: float,
    runs: Sequence[LatencyRun],
    settings: CapacitySettings,
    log: Log,
) -> Capacity:
    """The steady-state capacity, the paced runs at fractions as the search's first probes."""

    def measure(rate: float) -> Measured:
        started = time.monotonic()
        run = paced.run(rate, rate / peak, settings.seconds)
        log(
            f"  p99 {run.latency_ms['p99']:.1f} ms at {rate:,.0f}/s "
            f"(probe took {time.monotonic() - started:.1f} s)"
        )
        return Measured(run.latency_ms["p99"], _probe_stats(run))

    found = search(
        measure,
        peak,
        bound_ms=settings.bound_ms,
        seeds=[(r.fraction, Measured(r.latency_ms["p99"], _probe_stats(r))) for r in runs],
        max_probes=settings.max_probes,
        tolerance=settings.tolerance,
    )
    log(
        f"  steady-state capacity (p99 <= {settings.bound_ms:g} ms): {found.per_s:,.0f}/s = "
        f"{found.fraction:.0%} of the backlog peak (bracket {found.bracket[0]:.0%}.."
        f"{found.bracket[1]:.0%}, {len(found.probes)} probes)"
    )
    return found


def pace_command(connection: KcatConnection, topic: str, rate: float, path: Path) -> list[str]:
    """The paced load generator (:mod:`sentistream.bench.pace`) writing ``path`` to ``topic``."""
    command = [sys.executable, "-m", "sentistream.bench.pace"]
    command += ["--kcat-config", str(connection.config_file)]
    for item in connection.properties:
        command += ["--kcat-property", item]
    return [*command, "--topic", topic, "--rate", f"{rate:.3f}", str(path)]


def _with_latencies(
    run: LatencyRun, labels: Sequence[Label], prefix: str | None = None
) -> LatencyRun:
    """``run`` with the latencies of its tweets (ids ``prefix<n>``; ``lat<fraction>-``)."""
    prefix = prefix or f"lat{run.fraction}-"
    ids = {label.id for label in labels if label.id.startswith(prefix)}
    wanted = {f"{prefix}{n}" for n in range(run.tweets)}
    samples = sorted(latencies_ms(labels, wanted))
    if len(ids & wanted) < run.tweets:
        raise RuntimeError(f"{run.tweets - len(ids & wanted)} labels of the {prefix} run missing")
    summary = {f"p{round(q * 100)}": quantile(samples, q) for q in (0.5, 0.95, 0.99)}
    summary["max"] = samples[-1]
    return replace(run, labels_on_topic=len(ids & wanted), latency_ms=summary, samples_ms=samples)


def run_scale_out(
    session: Session,
    model_dir: Path,
    texts: Sequence[str],
    *,
    workers: int,
    worker_settings: Mapping[str, str] | None = None,
    worker_env: Mapping[str, str] | None = None,
    log: Log = print,
) -> ScaleOut:
    """``workers`` workers in one group, given their partitions, then a kcat backlog."""
    topics = session.create_topics(f"scale{workers}")
    group = f"g-{topics['input']}"
    procs = [
        BenchWorker(
            session.broker.connection,
            model_dir,
            topics,
            group,
            dict(worker_settings or {}),
            dict(worker_env or {}),
        )
        for _ in range(workers)
    ]
    try:
        for proc in procs:
            proc.start()
        _wait_assigned(procs, PARTITIONS, timeout_s=60)
        items = payloads(texts, "scale-")
        meter = session.meter({f"worker {n + 1}": p.pid for n, p in enumerate(procs)}).start()
        _, fill_cpu = session.fill(topics["input"], items)
        session.wait_labels(topics, len(items), timeout_s=600)
        cpu = meter.stop() | {"load generator (kcat)": round(fill_cpu, 3)}
    finally:
        for proc in procs:
            proc.stop()
    count = count_labels(session.labels(topics["output"]), {k.decode() for k, _ in items})
    log(
        f"scale-out: {workers} worker(s), {count.distinct:,} labels in {count.span_s:.2f} s = "
        f"{count.throughput_per_s:,.0f} tweets/s; CPU s {cpu}"
    )
    return ScaleOut(
        workers=workers,
        partitions=PARTITIONS,
        tweets=len(items),
        labels_on_topic=count.distinct,
        throughput_per_s=count.throughput_per_s,
        cpu_s=cpu,
    )


def _wait_assigned(procs: Sequence[BenchWorker], partitions: int, timeout_s: float) -> None:
    """Until the group has handed out every partition and each worker holds some."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = [p.metric_sum("sentistream_assigned_partitions") for p in procs]
        if sum(held) == partitions and all(held):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the group did not settle on {partitions} partitions in {timeout_s} s")


def as_json(value: Any) -> Any:
    """A result dataclass as JSON data, latency samples left out."""
    data = asdict(value)
    for run in data.get("latency", []):
        run.pop("samples_ms", None)
    return data
