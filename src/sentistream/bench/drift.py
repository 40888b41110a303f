"""Per-tweet cost of the worker's drift signals (``python -m sentistream.bench.drift``).

Feeds :class:`~sentistream.worker.core.drift.DriftSignals` micro-batches shaped like the
worker's (256 tweets of 11 tokens on average, 3 labels) and prints the cost per tweet, next to
the cost of the same batches' label bookkeeping without drift signals for scale.
"""

from __future__ import annotations

import random
import time

from prometheus_client import CollectorRegistry

from sentistream.worker.core.drift import DriftReference, DriftSignals
from sentistream.worker.core.metrics import WorkerMetrics

BATCH = 256
ROUNDS = 400


def main() -> None:
    rng = random.Random(7)
    labels = ("negative", "neutral", "positive")
    batches = []
    for _ in range(20):
        ids = [
            [rng.choice((1, *range(2, 400))) for _ in range(rng.randint(3, 20))]
            for _ in range(BATCH)
        ]
        confidences = [rng.uniform(0.34, 1.0) for _ in range(BATCH)]
        said = [rng.choice(labels) for _ in range(BATCH)]
        batches.append((ids, confidences, said))
    metrics = WorkerMetrics.create(CollectorRegistry())
    signals = DriftSignals(metrics.drift, "primary")
    signals.use_model("1", DriftReference(0.05, dict.fromkeys(labels, 1 / 3), 0.5, 11.0))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for n in range(ROUNDS):
            signals.observe(*batches[n % len(batches)])
        best = min(best, time.perf_counter() - started)
    per_tweet_us = best / (ROUNDS * BATCH) * 1e6
    print(f"drift signals: {per_tweet_us:.3f} µs a tweet (best of 5, {ROUNDS} batches of {BATCH})")


if __name__ == "__main__":
    main()
