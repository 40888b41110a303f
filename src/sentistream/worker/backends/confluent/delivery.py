"""Producer acknowledgements for the confluent sink: librdkafka's delivery reports resolve
the port's :class:`~sentistream.worker.core.ports.Delivery`, and a thread serves them.

librdkafka runs a delivery report (``on_delivery``) only inside ``Producer.poll()`` or
``flush()``, on the calling thread. Two things call them:

* the loop, so it never depends on a thread of ours: every flush, and every 256th send,
  polls the producer, and asking a pending :class:`ServedDelivery` whether it is ``done()``
  (what :class:`~sentistream.worker.core.guarantee.AtLeastOnce` asks each step) polls it too;
* :class:`DeliveryServer`, a daemon thread blocked in ``poll(0.05)``, which wakes as soon as a
  report arrives, so callbacks run when Kafka acknowledges (as kafka-python's do on its IO
  thread) rather than at the loop's next step. If the thread dies, the loop's own polls still
  complete every delivery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message

from sentistream.worker.core.ports import Delivered, Delivery

__all__ = ["DeliveryServer", "ServedDelivery"]

log = logging.getLogger(__name__)

#: How long the server's poll blocks when no report comes (it returns at once when one does).
SERVE_INTERVAL_S = 0.05


class _Reporting(threading.local):
    active = False


_reporting = _Reporting()
"""Set on a thread while it runs a delivery report (inside the producer's poll)."""


class ServedDelivery:
    """A record's :class:`~sentistream.worker.core.ports.Delivery`, resolved by librdkafka's
    delivery report (:meth:`report`); while pending, ``done()`` first serves the producer's
    reports (``serve``: a zero-timeout poll), except when asked from inside a report (a
    callback of another delivery): polling the producer from within its own poll breaks
    confluent-kafka's per-thread call state, and the process aborts
    (``CallState_get: Assertion `cs != NULL' failed``).

    Not a ``concurrent.futures.Future`` (a condition variable and a state machine per
    record): one lock guards the only race, a callback added while the report runs on
    another thread."""

    __slots__ = ("_callbacks", "_done", "_error", "_lock", "_result", "_serve")

    def __init__(self, serve: Callable[[], object]) -> None:
        self._serve = serve
        self._lock = threading.Lock()
        self._done = False
        self._result: Delivered | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Delivery], object]] = []

    def done(self) -> bool:
        if not self._done and not _reporting.active:
            self._serve()
        return self._done

    def cancelled(self) -> bool:
        return False  # librdkafka cannot take a produced record back

    def exception(self) -> BaseException | None:
        return self._error

    def result(self) -> Delivered | None:
        if self._error is not None:
            raise self._error
        return self._result

    def add_done_callback(self, fn: Callable[[Delivery], object]) -> None:
        with self._lock:
            if not self._done:
                self._callbacks.append(fn)
                return
        self._call(fn)

    def report(self, error: KafkaError | None, message: Message | None) -> None:
        """librdkafka's ``on_delivery``: the broker acknowledged, or gave up on, the record."""
        outer = _reporting.active
        _reporting.active = True
        try:
            with self._lock:
                if self._done:
                    return
                if error is not None:
                    self._error = KafkaException(error)
                elif message is not None:
                    self._result = Delivered(message.partition() or 0, message.offset() or 0)
                self._done = True
                callbacks, self._callbacks = self._callbacks, []
            for fn in callbacks:
                self._call(fn)
        finally:
            _reporting.active = outer

    def _call(self, fn: Callable[[Delivery], object]) -> None:
        try:
            fn(self)
        except Exception:  # as concurrent.futures does: one broken callback stops no other
            log.exception("exception calling callback for %r", self)


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
