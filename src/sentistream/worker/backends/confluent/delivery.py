"""Producer acknowledgements for the confluent sink: the :class:`Delivery` object and the
thread that serves librdkafka's delivery reports.

librdkafka runs a delivery report (``on_delivery``) only inside ``Producer.poll()`` or
``flush()``, on the calling thread. Two things call them:

* the loop, so it never depends on a thread of ours: every send and flush polls the
  producer, and asking a pending :class:`ConfluentDelivery` whether it
  :attr:`~ConfluentDelivery.is_done` (what :class:`~sentistream.worker.core.guarantee.AtLeastOnce`
  asks each step) polls it too;
* :class:`DeliveryServer`, a daemon thread blocked in ``poll(0.05)``, which wakes as soon as a
  report arrives. Without it a report waited for the loop's next step, up to one idle poll
  (0.1 s): measured in the bench, ``sentistream_records_labeled_total`` lagged the labels
  on the topic (19,869 of 20,000 when they had all landed), and
  ``sentistream_event_to_label_seconds`` counted that wait. With it the callbacks run when
  Kafka acknowledges, as kafka-python's do on its IO thread. If the thread dies, the loop's
  own polls still complete every delivery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message

__all__ = ["ConfluentDelivery", "DeliveryServer"]

log = logging.getLogger(__name__)

#: How long the server's poll blocks when no report comes (it returns at once when one does).
SERVE_INTERVAL_S = 0.05


class ConfluentDelivery:
    """A produced record's acknowledgement, as the loop's :class:`Delivery`; completed by
    librdkafka's delivery report (:meth:`complete`), on whichever thread polled.

    Callbacks, like kafka-python's, run on success only, with the record's metadata (the
    librdkafka :class:`Message`) after their own arguments, once; an exception inside one is
    logged, never raised into librdkafka's poll. ``lock`` (one per sink) makes adding a
    callback and completing atomic with each other.
    """

    __slots__ = ("_callbacks", "_done", "_error", "_lock", "_serve", "value")

    def __init__(self, serve: Callable[[], object], lock: threading.Lock | None = None) -> None:
        self._serve = serve
        self._lock = lock or threading.Lock()
        self._done = False
        self._error: BaseException | None = None
        self._callbacks: list[tuple[Callable[..., object], tuple[object, ...]]] = []
        self.value: Message | None = None

    @property
    def is_done(self) -> bool:
        if not self._done:
            self._serve()
        return self._done

    @property
    def exception(self) -> BaseException | None:
        return self._error

    def failed(self) -> bool:
        return self.is_done and self._error is not None

    def add_callback(self, fn: Callable[..., object], *args: object) -> ConfluentDelivery:
        with self._lock:
            if not self._done:
                self._callbacks.append((fn, args))
                return self
        if self._error is None:
            _run(fn, (*args, self.value))
        return self

    def complete(self, error: KafkaError | None, message: Message | None) -> None:
        """librdkafka's ``on_delivery``: the broker acknowledged, or gave up on, the record."""
        with self._lock:
            if error is not None:
                self._error = KafkaException(error)
            self.value = message
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        if error is None:
            for fn, args in callbacks:
                _run(fn, (*args, message))


def _run(fn: Callable[..., object], args: tuple[object, ...]) -> None:
    try:
        fn(*args)
    except Exception:  # a metric callback failing must not fail librdkafka's poll
        log.exception("delivery callback %r failed", fn)


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
