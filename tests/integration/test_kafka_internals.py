"""Every private attribute of kafka-python that the backend reads exists on the installed
client's real objects, connected to a real broker, and each access returns what its
docstring says. pyproject.toml bounds kafka-python to the releases this passed on."""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from sentistream.worker.backends.kafka_python import internals
from sentistream.worker.backends.kafka_python.sink import KafkaSink
from sentistream.worker.backends.kafka_python.source import KafkaSource
from sentistream.worker.backends.kafka_python.transactions import KafkaTransactionalSink
from sentistream.worker.core.ports import Outgoing
from sentistream.worker.settings import WorkerSettings
from tests.integration.worker_process import Topics


def _settings(bootstrap: str, topics: Topics, **extra: object) -> WorkerSettings:
    return WorkerSettings(
        bootstrap_servers=bootstrap,
        input_topic=topics.input,
        output_topic=topics.output,
        group_id=topics.group,
        **extra,  # type: ignore[arg-type]
    )


def test_the_consumers_private_state_is_there_and_reads_the_position(
    kafka_bootstrap: str, topics: Topics
) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for n in range(5):
        producer.send(topics.input, value=b"x%d" % n, partition=0)
    producer.flush(10)
    producer.close()
    source = KafkaSource(_settings(kafka_bootstrap, topics))
    consumer: KafkaConsumer = source._consumer
    try:
        internals.check_consumer(consumer)
        source.subscribe()
        got = 0
        for _ in range(50):
            got += sum(len(r) for r in source.poll(0.2, 100).values())
            if got == 5:
                break
        assert got == 5
        tp = TopicPartition(topics.input, 0)
        assert internals.position(consumer, tp) == 5
        assert internals.position(consumer, TopicPartition(topics.input, 99)) is None
        assert internals.finish_lost_join(consumer) is False  # a healthy join needs no repair
    finally:
        source.close()


def test_the_producers_private_state_is_there(kafka_bootstrap: str, topics: Topics) -> None:
    sink = KafkaSink(_settings(kafka_bootstrap, topics))
    try:
        internals.check_producer(sink._producer)
    finally:
        sink.close(5)


def test_the_transactional_producers_private_state_is_there(
    kafka_bootstrap: str, topics: Topics
) -> None:
    sink = KafkaTransactionalSink(
        _settings(
            kafka_bootstrap,
            topics,
            processing_guarantee="exactly-once",
            transactional_id=f"internals-{topics.group}",
        )
    )
    try:
        internals.check_producer(sink._producer)
        assert internals.transaction_manager(sink._producer) is not None
        sink.begin()
        sink.send(Outgoing(topics.output, b"k", b"v"))
        sink.commit(10)
    finally:
        sink.close(5)
