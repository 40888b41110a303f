"""Producer acknowledgements for the confluent sink: librdkafka's delivery reports resolve
the port's :class:`~concurrent.futures.Future`, and a thread serves those reports.

librdkafka runs a delivery report (``on_delivery``) only inside ``Producer.poll()`` or
``flush()``, on the calling thread. Two things call them:

* the loop, so it never depends on a thread of ours: every send and flush polls the
  producer, and asking a pending :class:`ServedDelivery` whether it is ``done()`` (what
  :class:`~sentistream.worker.core.guarantee.AtLeastOnce` asks each step) polls it too;
* :class:`DeliveryServer`, a daemon thread blocked in ``poll(0.05)``, which wakes as soon as a
  report arrives, so callbacks run when Kafka acknowledges (as kafka-python's do on its IO
  thread) rather than at the loop's next step. If the thread dies, the loop's own polls still
  complete every delivery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

from confluent_kafka import KafkaError, KafkaException, Message

from sentistream.worker.core.ports import Delivered

__all__ = ["DeliveryServer", "ServedDelivery"]

log = logging.getLogger(__name__)

#: How long the server's poll blocks when no report comes (it returns at once when one does).
SERVE_INTERVAL_S = 0.05


class _Reporting(threading.local):
    active = False


_reporting = _Reporting()
"""Set on a thread while it runs a delivery report (inside the producer's poll)."""


class ServedDelivery(Future[Delivered | None]):
    """A record's :class:`~sentistream.worker.core.ports.Delivery`, resolved by librdkafka's
    delivery report (:meth:`report`); while pending, ``done()`` first serves the producer's
    reports (``serve``: a zero-timeout poll), except when asked from inside a report (a
    callback of another delivery): polling the producer from within its own poll breaks
    confluent-kafka's per-thread call state, and the process aborts
    (``CallState_get: Assertion `cs != NULL' failed``)."""

    def __init__(self, serve: Callable[[], object]) -> None:
        super().__init__()
        self._serve = serve

    def done(self) -> bool:
        if not super().done() and not _reporting.active:
            self._serve()
        return super().done()

    def report(self, error: KafkaError | None, message: Message | None) -> None:
        """librdkafka's ``on_delivery``: the broker acknowledged, or gave up on, the record."""
        outer = _reporting.active
        _reporting.active = True
        try:
            if error is not None:
                self.set_exception(KafkaException(error))
            elif message is None:
                self.set_result(None)
            else:
                self.set_result(Delivered(message.partition() or 0, message.offset() or 0))
        finally:
            _reporting.active = outer


class DeliveryServer(threading.Thread):
    """Calls ``serve`` (the sink's poll, waiting up to the given seconds) until :meth:`stop`,
    so delivery reports run when they arrive."""

    def __init__(
        self, serve: Callable[[float], object], name: str = "sentistream-deliveries"
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._serve = serve
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._serve(SERVE_INTERVAL_S)
        except Exception:  # the loop's own polls still serve every delivery
            log.exception("the delivery thread stopped; deliveries complete in the loop")

    def stop(self, timeout_s: float = 1.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout_s)
