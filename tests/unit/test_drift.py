"""Drift signals: counted per micro-batch, compared with the model's reference, and read with
``registry.get_sample_value`` as Prometheus would scrape them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from sentistream.worker.core.drift import DriftReference, DriftSignals, psi
from sentistream.worker.core.metrics import WorkerMetrics

REFERENCE = DriftReference(
    oov_token_ratio=0.05,
    label_share={"negative": 0.4, "neutral": 0.2, "positive": 0.4},
    confidence_p10=0.5,
    mean_tokens=11.0,
)


def _signals(reference: DriftReference | None = REFERENCE, window: int = 10):
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    signals = DriftSignals(metrics.drift, "primary", window=window)
    signals.use_model("3", reference)
    return registry, signals


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"role": "primary", **labels})


def test_tokens_oov_lengths_and_confidence_are_counted_per_batch():
    registry, signals = _signals()
    signals.observe([[5, 1, 7], [1, 1], [9]], [0.9, 0.45, 0.6], ["positive", "neutral", "negative"])
    assert _value(registry, "sentistream_drift_tokens_total") == 6
    assert _value(registry, "sentistream_drift_oov_tokens_total") == 3
    assert _value(registry, "sentistream_drift_low_confidence_tweets_total") == 1  # 0.45 < 0.5
    assert _value(registry, "sentistream_drift_tokens_per_tweet_count") == 3
    assert _value(registry, "sentistream_drift_tokens_per_tweet_sum") == 6
    assert _value(registry, "sentistream_drift_tokens_per_tweet_bucket", le="2") == 2
    assert _value(registry, "sentistream_drift_confidence_bucket", le="0.5") == 1
    assert _value(registry, "sentistream_drift_confidence_bucket", le="+Inf") == 3
    assert _value(registry, "sentistream_drift_reference_oov_token_ratio") == 0.05
    assert _value(registry, "sentistream_drift_reference_label_share", label="neutral") == 0.2


def test_the_label_mix_is_windowed_and_its_psi_is_zero_on_the_reference_mix():
    registry, signals = _signals(window=10)
    mix = ["negative"] * 4 + ["neutral"] * 2 + ["positive"] * 4
    signals.observe([[2]] * 10, [0.9] * 10, mix)
    assert _value(registry, "sentistream_drift_label_mix_psi", version="3") == pytest.approx(0.0)
    assert _value(registry, "sentistream_drift_label_share", label="neutral") == 0.2
    # Ten positives push the first batch out of the window: the mix is all positive now.
    signals.observe([[2]] * 10, [0.9] * 10, ["positive"] * 10)
    assert _value(registry, "sentistream_drift_label_share", label="positive") == 1.0
    assert (_value(registry, "sentistream_drift_label_mix_psi", version="3") or 0.0) > 1.0


def test_without_a_reference_the_psi_is_nan_and_nothing_counts_as_low_confidence():
    registry, signals = _signals(reference=None)
    signals.observe([[1]], [0.1], ["negative"])
    assert math.isnan(_value(registry, "sentistream_drift_label_mix_psi", version="3") or 0.0)
    assert _value(registry, "sentistream_drift_low_confidence_tweets_total") == 0
    assert _value(registry, "sentistream_drift_tokens_total") == 1


def test_the_histograms_are_valid_exposition():
    registry, signals = _signals()
    signals.observe([[3, 4]], [0.99], ["positive"])
    text = generate_latest(registry).decode()
    assert "# TYPE sentistream_drift_confidence histogram" in text
    assert 'sentistream_drift_confidence_bucket{le="+Inf",role="primary"} 1.0' in text


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(0.01, 1.0), min_size=1),
)
def test_psi_is_zero_against_itself_and_never_negative(shares: dict[str, float]) -> None:
    total = sum(shares.values())
    normal = {k: v / total for k, v in shares.items()}
    assert psi(normal, normal) == pytest.approx(0.0, abs=1e-12)
    assert psi(normal, {"a": 0.5, "b": 0.3, "c": 0.2}) >= -1e-12
