"""kafka-python's producer as the loop's :class:`Sink`.

Settings (the shared values and why: :mod:`sentistream.worker.backends.tuning`): ``acks=all``
and idempotence, so retries neither lose nor duplicate a label; a short linger so a
micro-batch's labels share requests; no topic auto-creation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import IllegalStateError, KafkaTimeoutError

from sentistream.worker.backends.kafka_python import internals
from sentistream.worker.backends.kafka_python.config import producer_config
from sentistream.worker.core.ports import Delivered, Delivery, Outgoing, SinkUnavailable
from sentistream.worker.settings import WorkerSettings

__all__ = ["KafkaDelivery", "KafkaSink"]

log = logging.getLogger(__name__)


class KafkaDelivery:
    """kafka-python's ``FutureRecordMetadata`` as the port's :class:`Delivery`, read in place:
    no second future or lock per record. Its callbacks run on
    kafka-python's IO thread, or at once on the caller's if it is already done."""

    __slots__ = ("_produced",)

    def __init__(self, produced: Any) -> None:
        self._produced = produced

    def done(self) -> bool:
        return bool(self._produced.is_done)

    def cancelled(self) -> bool:
        return False  # kafka-python cannot cancel a send

    def exception(self) -> BaseException | None:
        error: BaseException | None = self._produced.exception
        return error

    def result(self) -> Delivered | None:
        meta = self._produced.value
        return None if meta is None else Delivered(meta.partition, meta.offset)

    def add_done_callback(self, fn: Callable[[Delivery], object]) -> None:
        def call(_: object) -> None:
            fn(self)

        self._produced.add_callback(call)
        self._produced.add_errback(call)


class KafkaSink:
    def __init__(self, settings: WorkerSettings, **overrides: Any) -> None:
        """``overrides``: more producer settings (the transactional sink's)."""
        self._producer = KafkaProducer(**producer_config(settings, **overrides))

    def partitions(self, topic: str) -> int:
        """From the producer's metadata, waiting up to ``max_block_ms`` for it."""
        try:
            return len(self._producer.partitions_for(topic))
        except (KafkaTimeoutError, IllegalStateError) as exc:
            raise SinkUnavailable(f"no partitions known for {topic}: {exc}") from exc

    def send(self, record: Outgoing) -> Delivery:
        """Raises what the producer raises for a record it refuses; :class:`SinkUnavailable`
        when it cannot take any record (metadata or buffer space not available in
        ``max_block_ms``, or closed)."""
        topic, key, value, headers, partition = record
        try:
            produced = self._producer.send(
                topic,
                key=key,
                value=value,
                headers=list(headers),
                partition=partition,
            )
        except (KafkaTimeoutError, IllegalStateError) as exc:
            raise SinkUnavailable(f"the producer cannot take records for {topic}: {exc}") from exc
        return KafkaDelivery(produced)

    def flush(self, timeout_s: float) -> bool:
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            return False
        return True

    def close(self, timeout_s: float) -> None:
        """Close, abandoning what is still unacknowledged after ``timeout_s`` (it was not
        committed, so a restart redoes it)."""
        try:
            self._producer.close(timeout=max(0.0, timeout_s))
        except KafkaTimeoutError:
            log.warning("producer closed with deliveries still pending (not committed)")
            internals.force_close(self._producer)
