"""kafka-python's consumer on assigned partitions, for a bounded read (``sentistream
relabel``): the worker's :class:`~.source.KafkaSource` (the same polling, unreadable-record
handling, commits and exactly-once group tracking) plus manual assignment, seeking, the
position, committed offsets and the offset look-ups a range resolves with.

It never subscribes, so it joins no consumer group: its ``group_id`` only keeps its commits
(Kafka's "simple" consumer group, generation -1). Exactly-once's offsets go into the
transaction under that group too (KIP-447 skips the generation check for it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from sentistream.worker.backends.kafka_python import internals
from sentistream.worker.backends.kafka_python.source import KafkaSource, connect_source
from sentistream.worker.core.ports import TopicPartition, TransactionFailed
from sentistream.worker.settings import WorkerSettings

__all__ = ["AssignedKafkaSource", "connect_assigned"]

#: How long one offset look-up (beginning, end, by time) may take.
LOOKUP_TIMEOUT_S = 15.0


def _kafka(tp: TopicPartition) -> KafkaTopicPartition:
    return KafkaTopicPartition(tp.topic, tp.partition)


def _ours(tp: Any) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


class AssignedKafkaSource(KafkaSource):
    def subscribe(self) -> None:
        raise RuntimeError("an AssignedKafkaSource reads assigned partitions; it never subscribes")

    # -- RangeConsumer ---------------------------------------------------------------------

    def assign(self, partitions: Collection[TopicPartition]) -> None:
        self._consumer.assign([_kafka(tp) for tp in partitions])

    def rewind_to(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._batch.reset()
        for tp, offset in offsets.items():
            self._consumer.seek(_kafka(tp), offset)

    def position(self, tp: TopicPartition) -> int | None:
        return internals.position(self._consumer, _kafka(tp))

    def committed_offsets(
        self, partitions: Collection[TopicPartition], timeout_s: float
    ) -> dict[TopicPartition, int]:
        found = {}
        for tp in partitions:
            try:
                offset = self._consumer.committed(_kafka(tp), timeout_ms=int(timeout_s * 1000))
            except KafkaTimeoutError as exc:
                raise TransactionFailed(
                    f"cannot read the committed offset of {tp.topic}-{tp.partition} within "
                    f"{timeout_s:g} s (Kafka holds it back while a transaction that committed "
                    "offsets to this group is open: is the same relabel running elsewhere?)"
                ) from exc
            except KafkaError as exc:
                raise TransactionFailed(
                    f"cannot read the committed offset of {tp.topic}-{tp.partition}: {exc!r}"
                ) from exc
            if offset is not None:
                found[tp] = int(offset)
        return found

    # -- OffsetLookup ----------------------------------------------------------------------

    def partitions_of(self, topic: str) -> list[int]:
        partitions = self._consumer.partitions_for_topic(topic)
        return sorted(partitions or ())

    def beginning_offsets(self, tps: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        found = self._lookup(self._consumer.beginning_offsets, [_kafka(tp) for tp in tps])
        return {_ours(tp): int(offset) for tp, offset in found.items()}

    def end_offsets(self, tps: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        """The last stable offsets under ``read_committed`` (the high watermarks otherwise)."""
        found = self._lookup(self._consumer.end_offsets, [_kafka(tp) for tp in tps])
        return {_ours(tp): int(offset) for tp, offset in found.items()}

    def offsets_for_time(
        self, tps: Collection[TopicPartition], ms: int
    ) -> dict[TopicPartition, int | None]:
        found = self._lookup(self._consumer.offsets_for_times, {_kafka(tp): ms for tp in tps})
        return {_ours(tp): None if hit is None else int(hit.offset) for tp, hit in found.items()}

    @staticmethod
    def _lookup(call: Any, argument: Any) -> dict[Any, Any]:
        try:
            found: dict[Any, Any] = call(argument, timeout_ms=int(LOOKUP_TIMEOUT_S * 1000))
        except KafkaTimeoutError as exc:
            raise KafkaTimeoutError(
                f"Kafka did not answer an offset look-up within {LOOKUP_TIMEOUT_S:g} s: {exc}"
            ) from exc
        return found


def connect_assigned(settings: WorkerSettings) -> AssignedKafkaSource:
    """An :class:`AssignedKafkaSource`, with :func:`~.source.connect_source`'s account of a
    refused login or TLS handshake."""
    source = connect_source(settings, AssignedKafkaSource)
    assert isinstance(source, AssignedKafkaSource)
    return source
