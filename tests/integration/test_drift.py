"""The drift signals on a real worker: near the model's reference on tweets like its held-out
ones, and far from it on tweets unlike its training data (made-up words, another language).

The reference is measured here, on a copy of the shipped model, with the same code
``make export`` runs (``sentistream.drift_reference``), on real tweets; the worker then reads
other real tweets, and a second worker reads invented ones."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sentistream.drift_reference import measure, write_into_manifest
from sentistream.inference import SentimentModel
from tests.integration.worker_process import (
    SHIPPED_MODEL,
    Topics,
    WorkerProcess,
    consume_all,
    produce_json,
    real_tweets,
    requires_shipped_model,
)

pytestmark = requires_shipped_model


@pytest.fixture(scope="module")
def model_with_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "sentistream-lstm"
    shutil.copytree(SHIPPED_MODEL, folder)
    tweets = real_tweets(3000)
    reference = measure(SentimentModel.load(folder), tweets[::2])  # every other tweet
    write_into_manifest(folder, reference)
    return folder


def invented_tweets(count: int) -> list[str]:
    """Words no vocabulary has: consonant-vowel strings of 5 to 9 letters."""
    rng = random.Random(11)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    return [
        " ".join("".join(rng.choices(syllables, k=rng.randint(3, 4))) for _ in range(8))
        for _ in range(count)
    ]


def _drift(worker: WorkerProcess) -> dict[str, float]:
    primary = {"role": "primary"}
    tokens = worker.metric("sentistream_drift_tokens_total", primary)
    tweets = worker.metric("sentistream_drift_confidence_count", primary)
    return {
        "oov": worker.metric("sentistream_drift_oov_tokens_total", primary) / tokens,
        "reference_oov": worker.metric("sentistream_drift_reference_oov_token_ratio", primary),
        "low_confidence": worker.metric("sentistream_drift_low_confidence_tweets_total", primary)
        / tweets,
        "psi": worker.metric("sentistream_drift_label_mix_psi", primary),
        "tweets": tweets,
    }


def test_the_drift_figures_stay_near_the_reference_on_tweets_like_it(
    kafka_bootstrap: str,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
    model_with_reference: Path,
) -> None:
    held_out = real_tweets(3000)[1::2]  # the other half of the sample the reference used
    ids = produce_json(kafka_bootstrap, topics.input, held_out)
    worker = start_worker(model_dir=str(model_with_reference))
    worker.wait_ready()
    consume_all(kafka_bootstrap, topics.output, cover=ids, timeout=120)
    figures = _drift(worker)
    print(f"\ndrift on tweets like the reference: {figures}")
    assert figures["tweets"] == len(held_out)
    assert figures["oov"] < 1.5 * figures["reference_oov"] + 0.01
    assert figures["low_confidence"] < 0.2  # 10 % expected
    assert figures["psi"] < 0.1
    assert worker.terminate() == 0, worker.log()


def test_the_drift_figures_move_on_tweets_unlike_the_training_data(
    kafka_bootstrap: str,
    topics: Topics,
    start_worker: Callable[..., WorkerProcess],
    model_with_reference: Path,
) -> None:
    ids = produce_json(kafka_bootstrap, topics.input, invented_tweets(1000))
    worker = start_worker(model_dir=str(model_with_reference))
    worker.wait_ready()
    consume_all(kafka_bootstrap, topics.output, cover=ids, timeout=120)
    figures = _drift(worker)
    print(f"\ndrift on invented words: {figures}")
    assert figures["oov"] > 2 * figures["reference_oov"]  # SentistreamVocabularyDrift's mark
    assert figures["oov"] > 0.9
    assert worker.terminate() == 0, worker.log()
