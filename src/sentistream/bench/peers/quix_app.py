"""A Quix Streams application, as its documentation shows: a per-record ``apply``.

``Application(broker_address=..., consumer_group=..., auto_offset_reset="earliest")``, the
input and output topics with JSON values, ``sdf.apply`` calling the model on one tweet, then
``sdf.to_topic``; everything else (commits every 5 s, the producer) is Quix's default. Runs
from the bench-only virtualenv (``make quix-venv``): quixstreams 3.28 needs confluent-kafka
< 2.13, the project another. Run: ``.cache/quix-venv/bin/python -m
sentistream.bench.peers.quix_app --bootstrap 127.0.0.1:9092 --input tweets --output labels
--model-dir models/sentistream-lstm``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import confluent_kafka
import quixstreams
from quixstreams import Application

from sentistream.bench.peers.common import PerRecordModel, announce_ready, parse_args

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args("A Quix Streams application, one tweet at a time (apply).", argv)
    model = PerRecordModel(args.model_dir, threads=args.threads)

    def classify_one(value: dict[str, Any], key: Any, timestamp: int, headers: Any) -> Any:
        return model.label(value, timestamp, time.time() * 1000)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
    )
    tweets = app.topic(args.input, value_deserializer="json")
    labels = app.topic(args.output, value_serializer="json")
    sdf = app.dataframe(tweets)
    sdf = sdf.apply(classify_one, metadata=True)
    sdf.to_topic(labels)
    announce_ready(
        f"quixstreams {quixstreams.__version__} (confluent-kafka {confluent_kafka.__version__})"
    )
    if args.count:
        app.run(count=args.count, collect=False)
    else:
        app.run()


if __name__ == "__main__":
    main()
