"""The fake :class:`~sentistream.worker.core.ports.Sink` and its deliveries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

from kafka.errors import MessageSizeTooLargeError
from kafka.record.default_records import DefaultRecordBatchBuilder

from sentistream.worker.core.loop import DEFAULT_MAX_REQUEST_BYTES
from sentistream.worker.core.ports import (
    Delivered,
    Outgoing,
    SinkUnavailable,
)

__all__ = ["DEFAULT_PARTITIONS", "FakeDelivery", "FakeSink", "Sent"]

#: Partitions of every topic of a :class:`FakeSink` made without ``partition_counts``.
DEFAULT_PARTITIONS = 16


# -- deliveries and the sink ----------------------------------------------------------------


class FakeDelivery(Future[Delivered | None]):
    """A :class:`~sentistream.worker.core.ports.Delivery` the test (or the fake sink)
    completes: :meth:`success` and :meth:`failure`, once, as a client's report would."""

    def success(self, result: Delivered | None) -> None:
        assert not self.done(), "a delivery completes once"
        self.set_result(result)

    def failure(self, exc: BaseException) -> None:
        assert not self.done(), "a delivery completes once"
        self.set_exception(exc)


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int | None
    delivery: FakeDelivery

    def header(self, name: str) -> bytes:
        values = [v for k, v in self.headers if k == name]
        assert len(values) == 1, f"header {name!r}: {values}"
        return values[0]


@dataclass
class FakeSink:
    """Records every send; deliveries stay pending until acknowledged or failed by the test.

    ``send`` raises as kafka-python's ``KafkaProducer.send`` does, before any delivery exists:
    ``TypeError`` for headers that are not ``(str, bytes)`` pairs (a null value), ``ValueError``
    for a record with neither key nor value, ``MessageSizeTooLargeError`` over
    ``max_request_size`` (kafka-python's own estimate). ``unavailable`` makes it raise
    :class:`SinkUnavailable`, as the adapter does when the producer cannot take any record.
    ``refuse`` (a predicate on the :class:`Sent`) refuses chosen records with ``TypeError``.

    ``auto_ack=True`` acknowledges each send at once. ``flush`` acknowledges everything
    pending unless ``hang`` is set (then it returns False with the deliveries still pending,
    as a producer flush that timed out).
    """

    auto_ack: bool = False
    hang: bool = False
    unavailable: bool = False
    max_request_size: int = DEFAULT_MAX_REQUEST_BYTES
    refuse: Callable[[Sent], bool] | None = None
    partition_counts: Mapping[str, int] | None = None
    sent: list[Sent] = field(default_factory=list)
    refused: list[tuple[Sent, BaseException]] = field(default_factory=list)
    flushes: list[float] = field(default_factory=list)
    _next_offset: dict[tuple[str, int], int] = field(default_factory=dict)

    def partitions(self, topic: str) -> int:
        """``partition_counts[topic]``; without ``partition_counts`` every topic exists with
        :data:`DEFAULT_PARTITIONS`. A topic not in it is unknown: :class:`SinkUnavailable`,
        as both sinks say when the metadata has no partitions for it."""
        if self.partition_counts is None:
            return DEFAULT_PARTITIONS
        if topic not in self.partition_counts:
            raise SinkUnavailable(f"no partitions known for {topic} (fake)")
        return self.partition_counts[topic]

    def send(self, record: Outgoing) -> FakeDelivery:
        topic, key, value, headers, partition = record
        attempt = Sent(topic, key, value, list(headers), partition, FakeDelivery())
        try:
            self._check(attempt)
        except Exception as exc:
            self.refused.append((attempt, exc))
            raise
        self.sent.append(attempt)
        if self.auto_ack:
            self._ack(attempt)
        return attempt.delivery

    def _check(self, attempt: Sent) -> None:
        """kafka-python 3.0's checks, in its order."""
        if self.unavailable:
            raise SinkUnavailable("the producer cannot take records (fake)")
        if attempt.value is None and attempt.key is None:
            raise ValueError("Need at least one: key or value")
        if not all(
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], bytes)
            for item in attempt.headers
        ):
            raise TypeError("All headers items must be (str, bytes) tuples")
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
            attempt.key, attempt.value, attempt.headers
        )
        if size > self.max_request_size:
            raise MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the "
                "maximum request size you have configured with the max_request_size "
                "configuration"
            )
        if attempt.partition is not None and not (
            0 <= attempt.partition < self.partitions(attempt.topic)
        ):
            raise ValueError(  # kafka-python's words
                f"Unrecognized partition {attempt.partition} for topic {attempt.topic}"
            )
        if self.refuse is not None and self.refuse(attempt):
            raise TypeError("refused by the test")

    def _ack(self, sent: Sent) -> None:
        partition = sent.partition if sent.partition is not None else 0
        offset = self._next_offset.get((sent.topic, partition), 0)  # each partition its own
        self._next_offset[(sent.topic, partition)] = offset + 1
        sent.delivery.success(Delivered(partition, offset))

    def pending(self) -> list[Sent]:
        return [s for s in self.sent if not s.delivery.done()]

    def ack(self, index: int) -> None:
        """Acknowledge the ``index``-th send (0-based, over all sends)."""
        self._ack(self.sent[index])

    def ack_all(self) -> None:
        for sent in self.pending():
            self._ack(sent)

    def fail(self, index: int, exc: BaseException | None = None) -> None:
        """Fail the ``index``-th send (0-based, over all sends)."""
        self.sent[index].delivery.failure(exc or RuntimeError("fake broker said no"))

    def flush(self, timeout_s: float) -> bool:
        self.flushes.append(timeout_s)
        if not self.hang:
            self.ack_all()
        return not self.pending()

    def to(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]
