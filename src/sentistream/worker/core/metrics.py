"""Every Prometheus metric the worker exposes, declared once on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.process_collector import ProcessCollector

from sentistream.worker.core.drift import DriftMetrics

__all__ = [
    "COMMIT_FAILURE_REASONS",
    "DEAD_LETTER_REASONS",
    "SHADOW_DROP_REASONS",
    "TRANSACTION_OUTCOMES",
    "WorkerMetrics",
]

#: Every ``reason`` a dead letter can carry; each counter series exists at 0 from the start.
DEAD_LETTER_REASONS = (
    "tombstone",
    "oversized",
    "decode_error",
    "invalid_json",
    "missing_text",
    "empty_text",
    "inference_error",
    "internal_error",
    "unreadable_record",
    "invalid_field",
)
COMMIT_FAILURE_REASONS = ("rebalance", "unavailable")
TRANSACTION_OUTCOMES = ("committed", "aborted")
SHADOW_DROP_REASONS = ("behind", "failed")

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class WorkerMetrics:
    registry: CollectorRegistry
    consumed: Counter
    labeled: Counter
    dead_lettered: Counter
    batch_size: Histogram
    inference_seconds: Histogram
    event_to_label_seconds: Histogram
    consumer_lag: Gauge
    consumer_lag_seconds: Gauge
    commits: Counter
    commit_failures: Counter
    assigned_partitions: Gauge
    rebalances: Counter
    input_partitions: Gauge
    max_batch_size: Gauge
    in_flight: Gauge
    paused: Gauge
    last_progress: Gauge
    oldest_unacked: Gauge
    transactions: Counter
    model: Info
    model_reloads: Counter
    model_reload_failures: Counter
    shadow_agreement: Gauge
    shadow_compared: Counter
    shadow_dropped: Counter
    drift: DriftMetrics

    @classmethod
    def create(
        cls, registry: CollectorRegistry | None = None, *, process: bool = False
    ) -> WorkerMetrics:
        """Declare the metrics on ``registry`` (a fresh one by default).

        ``process=True`` adds the standard ``process_*`` metrics (memory, CPU) for a real
        worker; tests leave them out.
        """
        registry = registry if registry is not None else CollectorRegistry()
        if process:
            ProcessCollector(registry=registry)
        metrics = cls._declare(registry)
        for reason in DEAD_LETTER_REASONS:
            metrics.dead_lettered.labels(reason=reason)
        for reason in COMMIT_FAILURE_REASONS:
            metrics.commit_failures.labels(reason=reason)
        for outcome in TRANSACTION_OUTCOMES:
            metrics.transactions.labels(outcome=outcome)
        for reason in SHADOW_DROP_REASONS:
            metrics.shadow_dropped.labels(reason=reason)
        for agree in ("true", "false"):
            metrics.shadow_compared.labels(agree=agree)
        metrics.shadow_agreement.set(float("nan"))  # no shadow, or nothing compared yet
        return metrics

    @classmethod
    def _declare(cls, registry: CollectorRegistry) -> WorkerMetrics:
        return cls(
            registry=registry,
            consumed=Counter(
                "sentistream_records_consumed",
                "Input records read.",
                ["topic"],
                registry=registry,
            ),
            labeled=Counter(
                "sentistream_records_labeled",
                "Records labelled and acknowledged by Kafka.",
                ["label"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "sentistream_records_dead_lettered",
                "Records sent to the dead-letter topic.",
                ["reason"],
                registry=registry,
            ),
            batch_size=Histogram(
                "sentistream_batch_size_records",
                "Records per micro-batch (one classifier call).",
                buckets=_BATCH_BUCKETS,
                registry=registry,
            ),
            inference_seconds=Histogram(
                "sentistream_inference_seconds",
                "Wall time of classifying one micro-batch.",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            event_to_label_seconds=Histogram(
                "sentistream_event_to_label_seconds",
                "Input record timestamp to its label acknowledged by Kafka.",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            consumer_lag=Gauge(
                "sentistream_consumer_lag_records",
                "High watermark minus the next offset to read, per assigned partition.",
                ["topic", "partition"],
                registry=registry,
            ),
            consumer_lag_seconds=Gauge(
                "sentistream_consumer_lag_seconds",
                "Per assigned partition with lag: seconds since the timestamp of the last record "
                "consumed from it (an upper bound on the age of its oldest unread record; it "
                "keeps growing while nothing is consumed); 0 without lag.",
                ["topic", "partition"],
                registry=registry,
            ),
            commits=Counter(
                "sentistream_commits",
                "Offset commits that sent offsets to Kafka and were accepted.",
                registry=registry,
            ),
            commit_failures=Counter(
                "sentistream_commit_failures",
                "Offset commits that did not happen: reason=rebalance (the partition moved; "
                "its new owner redoes the records) or unavailable (Kafka unreachable; retried).",
                ["reason"],
                registry=registry,
            ),
            assigned_partitions=Gauge(
                "sentistream_assigned_partitions",
                "Input partitions this worker owns.",
                registry=registry,
            ),
            rebalances=Counter(
                "sentistream_rebalances",
                "Rebalances this worker took part in (each assignment its group handed it, "
                "even one that left its partitions as they were).",
                registry=registry,
            ),
            input_partitions=Gauge(
                "sentistream_input_partitions",
                "Partitions of the input topic (cluster metadata, read after each rebalance); "
                "minus the group's assigned partitions: partitions no worker consumes.",
                registry=registry,
            ),
            max_batch_size=Gauge(
                "sentistream_max_batch_size_records",
                "The worker's --max-batch-size: the most records one micro-batch holds (the "
                "dashboard's batch fill divides by it).",
                registry=registry,
            ),
            in_flight=Gauge(
                "sentistream_in_flight_records",
                "Records taken from Kafka and not yet acknowledged by it (open micro-batch "
                "plus produced, unacknowledged); bounded by --max-in-flight.",
                registry=registry,
            ),
            paused=Gauge(
                "sentistream_paused",
                "1 while fetching is paused because --max-in-flight records are in flight.",
                registry=registry,
            ),
            last_progress=Gauge(
                "sentistream_last_progress_timestamp_seconds",
                "Unix time of the loop's last completed step.",
                registry=registry,
            ),
            oldest_unacked=Gauge(
                "sentistream_oldest_unacked_age_seconds",
                "Age of the oldest batch produced and not yet acknowledged by Kafka (0: none); "
                "/healthz fails past --max-unacked-age-s.",
                registry=registry,
            ),
            transactions=Counter(
                "sentistream_transactions",
                "Exactly-once transactions by outcome: committed (labels, dead letters and "
                "offsets visible together) or aborted (rewound and read again).",
                ["outcome"],
                registry=registry,
            ),
            model=Info("sentistream_model", "The model being served.", registry=registry),
            model_reloads=Counter(
                "sentistream_model_reloads",
                "New models swapped in without a restart (the manifest changed, or SIGHUP).",
                registry=registry,
            ),
            model_reload_failures=Counter(
                "sentistream_model_reload_failures",
                "New models refused (verification or warm-up failed); the old one kept serving.",
                registry=registry,
            ),
            shadow_agreement=Gauge(
                "sentistream_shadow_agreement_ratio",
                "Share of the last 1,000 tweets the shadow model labelled as the primary did "
                "(NaN without a shadow model or before its first batch).",
                registry=registry,
            ),
            shadow_compared=Counter(
                "sentistream_shadow_compared_records",
                "Tweets the shadow model labelled, by whether it agreed with the primary.",
                ["agree"],
                registry=registry,
            ),
            shadow_dropped=Counter(
                "sentistream_shadow_dropped_records",
                "Tweets the shadow model did not label: reason=behind (its queue was full) or "
                "failed (it raised); the primary labelled them as usual.",
                ["reason"],
                registry=registry,
            ),
            drift=DriftMetrics.declare(registry),
        )
