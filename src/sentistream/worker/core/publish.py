"""Labels and dead letters for a micro-batch → the sink; one delivery per record, always.

Building a record's output and handing it to the producer is guarded per record: whatever
that raises (kafka-python refuses a null header value with ``TypeError``, a record with
neither key nor value with ``ValueError``, an oversized one with ``MessageSizeTooLargeError``)
turns the label into that record's dead letter (``internal_error``). Dead letters are made
sendable before they are sent: null header values become empty, a tombstone without a key
gets an empty value, and a value that would take the record past the producer's
``max_request_size`` is truncated and says so in ``sentistream.errors.truncated`` and
``sentistream.errors.original_size``. If the dead letter is still refused, a bare one (error
headers only, empty value) is sent instead. Only :class:`SinkUnavailable` (the producer cannot
take any record) and a refused bare dead letter (:class:`DeadLetterFailed`) escape: those are
failures of the service, not of a record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sentistream.worker.core.classify import Labelled, Verdict
from sentistream.worker.core.label_format import LabelFormat
from sentistream.worker.core.messages import (
    InputRecord,
    InvalidMessage,
    clean_headers,
    error_headers,
    internal_error,
)
from sentistream.worker.core.ports import (
    DeadLetterFailed,
    Delivery,
    Outgoing,
    Sink,
    SinkUnavailable,
    failure_of,
    when_delivered,
)

__all__ = ["RECORD_OVERHEAD_BYTES", "KeepInputOrder", "Publisher", "Topics", "record_size"]

#: Upper bound of a record batch's and one record's framing (kafka-python estimates 61 + 21),
#: with room to spare; per header, two length varints.
RECORD_OVERHEAD_BYTES = 128
_HEADER_OVERHEAD_BYTES = 10


@dataclass(frozen=True)
class Topics:
    output: str
    dead_letter: str


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """An upper bound of what kafka-python counts against ``max_request_size``."""
    return (
        RECORD_OVERHEAD_BYTES
        + len(key or b"")
        + len(value or b"")
        + sum(_HEADER_OVERHEAD_BYTES + len(k.encode("utf-8")) + len(v) for k, v in headers)
    )


OnAck = Callable[..., None]


class _Sent(NamedTuple):
    """A label handed to the sink, for counting once acknowledged."""

    delivery: Delivery
    partition: int | None
    label: str
    timestamp_ms: int


class KeepInputOrder:
    """The ordering policy: a record's output goes to its input partition modulo the output
    topic's partitions, so the outputs of one input partition keep their order (and a topic
    with as many partitions maps one to one). The partition counts are asked of the sink
    once per topic."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._counts: dict[str, int] = {}

    def partition(self, topic: str, input_partition: int | None) -> int | None:
        """None (the client's partitioner chooses) when there is no input partition."""
        if input_partition is None:
            return None
        count = self._counts.get(topic)
        if count is None:
            count = self._counts[topic] = self._sink.partitions(topic)
        return input_partition % count


class Publisher:
    def __init__(
        self,
        sink: Sink,
        topics: Topics,
        *,
        label_format: LabelFormat | None = None,
        model_info: Mapping[str, str],
        max_request_bytes: int,
        on_labeled: OnAck,
        on_dead_lettered: OnAck,
    ) -> None:
        self.sink = sink
        self.topics = topics
        self.label_format = label_format or LabelFormat()
        self.order = KeepInputOrder(sink)
        self.model_info = dict(model_info)
        self.max_request_bytes = max_request_bytes
        self._on_labeled = on_labeled
        self._on_dead_lettered = on_dead_lettered

    def publish(
        self,
        records: Sequence[InputRecord],
        verdicts: Sequence[Verdict],
        now_ms: float,
        model_info: dict[str, str] | None = None,
    ) -> list[Delivery]:
        """``model_info``: the model that labelled this batch (default: :attr:`model_info`);
        a batch inferred before a model swap still names the model that labelled it."""
        info = self.model_info if model_info is None else model_info
        deliveries: list[Delivery] = []
        labelled: dict[int | None, list[_Sent]] = {}
        for record, verdict in zip(records, verdicts, strict=True):
            if isinstance(verdict, Labelled):
                try:
                    sent = self._label(record, verdict, now_ms, info)
                except SinkUnavailable:
                    raise
                except Exception as exc:  # this record's fault: its dead letter
                    deliveries.append(self.dead_letter(record, internal_error(exc, "publish")))
                    continue
                labelled.setdefault(sent.partition, []).append(sent)
                deliveries.append(sent.delivery)
            else:
                deliveries.append(self.dead_letter(record, verdict))
        for partition, sent_to in labelled.items():
            self._count_when_acknowledged(partition, sent_to)
        return deliveries

    def _label(
        self, record: InputRecord, labelled: Labelled, now_ms: float, info: dict[str, str]
    ) -> _Sent:
        value = self.label_format.encode(
            record, labelled.tweet, labelled.label, labelled.probabilities, info, now_ms
        )
        partition = self.order.partition(self.topics.output, record.partition)
        delivery = self.sink.send(
            Outgoing(
                self.topics.output, record.key, value, clean_headers(record.headers), partition
            )
        )
        return _Sent(delivery, partition, labelled.label, record.timestamp)

    def _count_when_acknowledged(self, partition: int | None, sent: list[_Sent]) -> None:
        """Call ``on_labeled`` for each label once Kafka acknowledges it, with one callback
        per output partition of the batch rather than one per record: a partition's records
        are acknowledged in the order they were sent (idempotent producer), so when its last
        one is done, so are the others; any that is not (or a batch without partitions, where
        the client spreads the records) gets a callback of its own."""
        if partition is None:
            for one in sent:
                when_delivered(one.delivery, self._on_labeled, one.label, one.timestamp_ms)
            return

        def settle(_: Delivery) -> None:
            for one in sent:
                if not one.delivery.done():
                    when_delivered(one.delivery, self._on_labeled, one.label, one.timestamp_ms)
                elif failure_of(one.delivery) is None:
                    self._on_labeled(one.label, one.timestamp_ms)

        sent[-1].delivery.add_done_callback(settle)

    def dead_letter(self, record: InputRecord, error: InvalidMessage) -> Delivery:
        try:
            key, value, headers = self.fit(record, error)
            delivery = self.sink.send(Outgoing(self.topics.dead_letter, key, value, headers))
        except SinkUnavailable:
            raise
        except Exception as exc:  # fall back to a bare dead letter
            bare = [
                *error_headers(record, error),
                ("sentistream.errors.dead_letter_error", _class_name(exc).encode()),
            ]
            try:
                delivery = self.sink.send(Outgoing(self.topics.dead_letter, None, b"", bare))
            except SinkUnavailable:
                raise
            except Exception as final:
                raise DeadLetterFailed(
                    f"even a bare dead letter for {record.topic}-{record.partition}"
                    f"@{record.offset} was refused: {final!r}"
                ) from final
        when_delivered(delivery, self._on_dead_lettered, error.reason)
        return delivery

    def fit(
        self, record: InputRecord, error: InvalidMessage
    ) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
        """The dead letter's key, value and headers, within what the producer accepts."""
        key, value = record.key, record.value
        original = clean_headers(record.headers)
        errors = error_headers(record, error)
        if key is None and value is None:
            value = b""  # kafka-python refuses a record with neither; the reason says tombstone
        headers = [*original, *errors]
        if record_size(key, value, headers) <= self.max_request_bytes:
            return key, value, headers
        size = len(value or b"")
        notes = [
            ("sentistream.errors.truncated", b"true"),
            ("sentistream.errors.original_size", str(size).encode()),
        ]
        headers = [*original, *errors, *notes]
        if record_size(key, b"", headers) > self.max_request_bytes:
            notes.append(("sentistream.errors.headers_dropped", str(len(original)).encode()))
            headers = [*errors, *notes]
        if record_size(key, b"", headers) > self.max_request_bytes and key is not None:
            headers.append(("sentistream.errors.key_dropped", str(len(key)).encode()))
            key = None
        budget = max(0, self.max_request_bytes - record_size(key, b"", headers))
        return key, (value or b"")[:budget], headers


def _class_name(exc: BaseException) -> str:
    kind = type(exc)
    return f"{kind.__module__}.{kind.__qualname__}"
