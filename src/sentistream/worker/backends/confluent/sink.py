"""confluent-kafka's (librdkafka's) producer as the loop's :class:`Sink`.

**Who serves librdkafka's callbacks.** librdkafka runs delivery reports only inside
``poll()``/``flush()`` on the calling thread. The producer's are served by the loop (every
send and flush, and asking a pending delivery whether it is done) and, so that they run when
Kafka acknowledges rather than at the next step, by a daemon thread: see
:mod:`sentistream.worker.backends.confluent.delivery`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from sentistream.worker.backends.confluent.config import producer_properties
from sentistream.worker.backends.confluent.delivery import DeliveryServer, ServedDelivery
from sentistream.worker.backends.confluent.errors import MAX_BLOCK_S, log_fatal_or_raise
from sentistream.worker.backends.shared import check_record
from sentistream.worker.core.ports import Delivery, Outgoing, SinkUnavailable
from sentistream.worker.settings import WorkerSettings

__all__ = ["ConfluentSink"]

log = logging.getLogger(__name__)

#: The loop's own sends serve the producer's delivery reports this often (a zero-timeout
#: poll); the delivery thread serves them as they come, so a send need not.
SERVE_EVERY_SENDS = 256

#: A send refused because the producer, not the record, is unusable.
_UNAVAILABLE = frozenset(
    {KafkaError._UNKNOWN_TOPIC, KafkaError._FATAL, KafkaError._STATE, KafkaError._DESTROY}
)


class ConfluentSink:
    def __init__(
        self,
        settings: WorkerSettings,
        overrides: Mapping[str, Any] | None = None,
        *,
        max_block_s: float = MAX_BLOCK_S,
    ) -> None:
        """``overrides``: more producer properties (the transactional sink's);
        ``max_block_s``: how long a send waits for room in librdkafka's queue."""
        self._max_block_s = max_block_s
        self._producer = Producer(producer_properties(settings, overrides))
        self._serve = lambda: self.serve(0)
        self._server = DeliveryServer(self.serve)
        self._server.start()
        self._closed = False
        self._sends = 0

    def serve(self, timeout_s: float) -> None:
        """Run the delivery reports that have arrived (waiting up to ``timeout_s`` for one).

        confluent-kafka raises a producer's fatal error (a fenced transactional producer, a
        broken idempotent sequence) once, from whichever poll or flush comes first, before
        that poll runs any report. The error is not lost by catching it here: the records it
        failed complete with their own errors, so the loop aborts the batch (and the abort
        says fenced), and every later send is refused as :class:`SinkUnavailable`."""
        try:
            self._producer.poll(timeout_s)
        except (KafkaException, SystemError) as exc:
            log_fatal_or_raise(exc)

    def partitions(self, topic: str) -> int:
        """One metadata request (the publisher asks once per topic)."""
        try:
            metadata = self._producer.list_topics(topic, timeout=MAX_BLOCK_S)
        except KafkaException as exc:
            raise SinkUnavailable(f"no metadata for {topic}: {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            why = found.error if found is not None else "not listed"
            raise SinkUnavailable(f"no partitions known for {topic}: {why}")
        return len(found.partitions)

    def send(self, record: Outgoing) -> Delivery:
        """Raises ``ValueError``/``TypeError`` for a record the port refuses
        (:func:`~sentistream.worker.backends.shared.check_record`), librdkafka's
        :class:`KafkaException` for one it refuses (too large, ...); :class:`SinkUnavailable`
        when it cannot take any record (its queue still full for ``max_block_s``, the topic
        unknown, the producer closed or failed)."""
        topic, key, value, headers, partition = record
        if self._closed:
            raise SinkUnavailable("the producer is closed")
        check_record(key, value, headers)
        delivery = ServedDelivery(self._serve)
        deadline = time.monotonic() + self._max_block_s
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=-1 if partition is None else partition,  # -1: by key
                    headers=list(headers),
                    on_delivery=delivery.report,
                )
                break
            except BufferError:  # librdkafka's queue is full: wait for acknowledgements
                if time.monotonic() >= deadline:
                    raise SinkUnavailable(
                        f"the producer's queue stayed full for {self._max_block_s:g} s"
                    ) from None
                self.serve(0.05)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError) and (
                    error.code() in _UNAVAILABLE or error.fatal()
                ):
                    raise SinkUnavailable(
                        f"the producer cannot take records for {topic}: {error.str()}"
                    ) from exc
                raise
        self._sends += 1
        if self._sends % SERVE_EVERY_SENDS == 0:  # reports of a long burst, without a thread
            self.serve(0)
        return delivery

    def flush(self, timeout_s: float) -> bool:
        """Whether every record sent was acknowledged (or failed) within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        try:
            return self._producer.flush(max(0.0, timeout_s)) == 0
        except (KafkaException, SystemError) as exc:  # a fatal error, raised once: see serve()
            log_fatal_or_raise(exc)
            return self._producer.flush(max(0.0, deadline - time.monotonic())) == 0

    def close(self, timeout_s: float) -> None:
        """Flush for up to ``timeout_s``, then close, abandoning what is still
        unacknowledged (it was not committed, so a restart redoes it)."""
        if self._closed:
            return
        self._closed = True
        self._server.stop()
        if not self.flush(timeout_s):
            log.warning("producer closed with deliveries still pending (not committed)")
            self._producer.purge()
            self.serve(0)
        self._producer.close()
