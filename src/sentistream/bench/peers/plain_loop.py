"""A plain kafka-python loop, as its documentation shows: one tweet in, one label out.

``for message in consumer`` → JSON → the model on this one tweet → ``producer.send``; offsets
are committed by the consumer itself (``enable_auto_commit``, kafka-python's default), the
producer keeps its defaults. Run: ``python -m sentistream.bench.peers.plain_loop --bootstrap
127.0.0.1:9092 --input tweets --output labels --model-dir models/sentistream-lstm``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import kafka
from kafka import KafkaConsumer, KafkaProducer

from sentistream.bench.peers.common import PerRecordModel, announce_ready, parse_args

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args("A plain kafka-python consumer/producer loop, one tweet at a time.", argv)
    model = PerRecordModel(args.model_dir, threads=args.threads)
    consumer = KafkaConsumer(
        args.input,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        value_deserializer=json.loads,
    )
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        value_serializer=lambda value: json.dumps(value).encode(),
    )
    announce_ready(f"kafka-python {kafka.__version__}")
    labelled = 0
    try:
        for message in consumer:
            label = model.label(message.value, message.timestamp, time.time() * 1000)
            producer.send(args.output, key=message.key, value=label)
            labelled += 1
            if labelled == args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush()
        producer.close()
        consumer.close()


if __name__ == "__main__":
    main()
