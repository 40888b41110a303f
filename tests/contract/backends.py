"""What each implementation under contract brings: topics, a way to produce input and read
output, and its sources and sinks (arroyo's ``tests/backends/mixins.py`` asks the same of
each broker through an abstract factory).

:class:`FakeBackend` is the in-memory one of ``tests/unit/fakes.py``; :class:`RealBackend` is
``kafka_client(name)`` on the test broker, read back with kafka-python's own clients."""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from sentistream.worker.backends import kafka_client
from sentistream.worker.core.loop import DEFAULT_MAX_REQUEST_BYTES
from sentistream.worker.core.ports import TopicPartition
from sentistream.worker.settings import KafkaClientName, WorkerSettings
from tests.contract.ports import poll
from tests.unit.fakes import (
    FakeRecord,
    FakeSink,
    FakeSource,
    FakeTransactionalSink,
    FakeTransactionalSource,
    FakeTransactionLog,
)

__all__ = ["Backend", "FakeBackend", "RealBackend"]


class Backend(ABC):
    """One implementation of the ports, and the broker around it."""

    name: str
    size_error: type[BaseException]
    """What ``send`` raises, synchronously, for a record over the producer's request size."""
    max_request_bytes = DEFAULT_MAX_REQUEST_BYTES

    @abstractmethod
    def topic(self, partitions: int = 1) -> str: ...

    @abstractmethod
    def produce(self, topic: str, items: Sequence[tuple[int, bytes]]) -> None:
        """Append ``(partition, value)`` records (key ``b"k"``) to ``topic``."""

    @abstractmethod
    def source(self, topic: str, *, group: str | None = None, transactional: bool = False) -> Any:
        """A subscribed source; returns once it owns every partition of ``topic``."""

    @abstractmethod
    def join(self, topic: str, group: str) -> Any:
        """A second member of ``group``, subscribed; the group starts rebalancing (the
        first member takes part at its next poll). Drive both with :meth:`settle`."""

    @abstractmethod
    def settle(self, members: Sequence[Any], partitions: int) -> None:
        """Poll the members (taking no records) until they share the ``partitions``."""

    @abstractmethod
    def sink(self) -> Any: ...

    @abstractmethod
    def transactional_sink(self) -> Any: ...

    @abstractmethod
    def read(self, topic: str, *, committed_only: bool, marker: bytes) -> list[bytes]:
        """The values ``topic`` holds up to and including ``marker`` (which must be there),
        as a ``read_committed`` reader sees them when ``committed_only``."""

    @abstractmethod
    def committed(self, group: str, topic: str) -> dict[TopicPartition, int]: ...

    def group(self) -> str:
        return f"contract-{uuid.uuid4().hex[:10]}"

    def close(self) -> None:  # noqa: B027 - the fakes have nothing to close
        """Close what the backend made."""


# -- the fakes -----------------------------------------------------------------------------


class _FakeGroup:
    """One consumer group over the fake sources: the assignment, round robin, moved at each
    member's next poll as a real group's."""

    def __init__(self, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self.members: list[FakeSource] = []

    def join(self, member: FakeSource) -> None:
        self.members.append(member)
        shares: list[set[TopicPartition]] = [set() for _ in self.members]
        for p in range(self.partitions):
            shares[p % len(self.members)].add(TopicPartition(self.topic, p))
        for each, share in zip(self.members, shares, strict=True):
            each.rebalance_to(share)


class FakeBackend(Backend):
    name = "fakes"

    def __init__(self) -> None:
        from kafka.errors import MessageSizeTooLargeError

        self.size_error = MessageSizeTooLargeError
        self._partitions: dict[str, int] = {}
        self._records: dict[str, list[FakeRecord]] = {}
        self._sources: dict[str, list[FakeSource]] = {}
        self._groups: dict[tuple[str, str], _FakeGroup] = {}
        self._sinks: list[FakeSink] = []
        self.log = FakeTransactionLog()

    def topic(self, partitions: int = 1) -> str:
        name = f"t{len(self._partitions)}"
        self._partitions[name] = partitions
        self._records[name] = []
        return name

    def produce(self, topic: str, items: Sequence[tuple[int, bytes]]) -> None:
        for partition, value in items:
            offset = sum(1 for r in self._records[topic] if r.partition == partition)
            record = FakeRecord(topic, partition, offset, 0, b"k", value, [])
            self._records[topic].append(record)
            for source in self._sources.get(topic, []):
                source.feed(record)

    def _new_source(self, topic: str, group: str, transactional: bool) -> FakeSource:
        source = FakeTransactionalSource(self.log) if transactional else FakeSource()
        source.partition_count = self._partitions[topic]
        source.feed(*self._records[topic])
        self._sources.setdefault(topic, []).append(source)
        key = (group, topic)
        if key not in self._groups:
            self._groups[key] = _FakeGroup(topic, self._partitions[topic])
        self._groups[key].join(source)
        return source

    def source(
        self, topic: str, *, group: str | None = None, transactional: bool = False
    ) -> FakeSource:
        source = self._new_source(topic, group or self.group(), transactional)
        poll(source, 0, 1)  # takes the assignment (the topic is still empty)
        return source

    def join(self, topic: str, group: str) -> FakeSource:
        return self._new_source(topic, group, transactional=False)

    def settle(self, members: Sequence[Any], partitions: int) -> None:
        for member in members:
            assert not poll(member, 0, 1)

    def sink(self) -> FakeSink:
        sink = FakeSink(partition_counts=self._partitions)
        self._sinks.append(sink)
        return sink

    def transactional_sink(self) -> FakeTransactionalSink:
        sink = FakeTransactionalSink(self.log, partition_counts=self._partitions)
        self._sinks.append(sink)
        return sink

    def read(self, topic: str, *, committed_only: bool, marker: bytes) -> list[bytes]:
        if committed_only:
            sent = self.log.visible(topic)
        else:
            sent = [s for sink in self._sinks for s in sink.to(topic) if s.delivery.done()]
        values = [s.value or b"" for s in sent]
        assert marker in values, f"{marker!r} not in {values}"
        return values[: values.index(marker) + 1]

    def committed(self, group: str, topic: str) -> dict[TopicPartition, int]:
        merged: dict[TopicPartition, int] = dict(self.log.offsets)
        for source in self._sources.get(topic, []):
            if source in self._groups[(group, topic)].members:
                merged.update(source.committed())
        return merged


# -- a real client on the test broker -------------------------------------------------------


class RealBackend(Backend):
    def __init__(
        self, client: KafkaClientName, bootstrap: str, topic_factory: Callable[..., str]
    ) -> None:
        from kafka import KafkaAdminClient

        self.name = client
        self.client = kafka_client(client)
        self.bootstrap = bootstrap
        self._topic_factory = topic_factory
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self._open: list[Any] = []
        self._producer: Any = None
        if client == "confluent":
            from confluent_kafka import KafkaException

            self.size_error = KafkaException
        else:
            from kafka.errors import MessageSizeTooLargeError

            self.size_error = MessageSizeTooLargeError

    def settings(self, topic: str, group: str, **extra: Any) -> WorkerSettings:
        return WorkerSettings(
            bootstrap_servers=self.bootstrap,
            input_topic=topic,
            group_id=group,
            kafka_client=self.name,
            **extra,
        )

    def topic(self, partitions: int = 1) -> str:
        return self._topic_factory(partitions=partitions, prefix=f"contract-{self.name}")

    def produce(self, topic: str, items: Sequence[tuple[int, bytes]]) -> None:
        from kafka import KafkaProducer

        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        for partition, value in items:
            self._producer.send(topic, key=b"k", value=value, partition=partition)
        self._producer.flush(30)

    def _exactly_once(self) -> dict[str, Any]:
        return {
            "processing_guarantee": "exactly-once",
            "transactional_id": f"contract-{uuid.uuid4().hex[:10]}",
            "transaction_timeout_s": 10.0,
        }

    def _new_source(self, topic: str, group: str, transactional: bool) -> Any:
        extra = self._exactly_once() if transactional else {}
        source = self.client.source(self.settings(topic, group, **extra))
        self._open.append(source)
        source.subscribe()
        return source

    def source(self, topic: str, *, group: str | None = None, transactional: bool = False) -> Any:
        source = self._new_source(topic, group or self.group(), transactional)
        self.settle([source], self._partition_count(topic))
        return source

    def join(self, topic: str, group: str) -> Any:
        member = self._new_source(topic, group, transactional=False)
        poll(member, 0.5, 1)  # sends its JoinGroup: the group starts rebalancing
        return member

    def settle(self, members: Sequence[Any], partitions: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            owned = [m.assignment() for m in members]
            every = set().union(*owned)
            disjoint = sum(len(o) for o in owned) == partitions
            if len(every) == partitions and disjoint and all(owned):
                return
            assert time.monotonic() < deadline, f"the group did not settle: {owned}"
            for member in members:
                assert not poll(member, 0.5, 1), "settle() expects an empty topic"

    def _partition_count(self, topic: str) -> int:
        described = self._admin.describe_topics([topic])
        return len(described[0]["partitions"])

    def sink(self) -> Any:
        sink = self.client.sink(self.settings("unused", self.group()))
        self._open.append(sink)
        return sink

    def transactional_sink(self) -> Any:
        settings = self.settings("unused", self.group(), **self._exactly_once())
        sink = self.client.transactional_sink(settings)
        self._open.append(sink)
        return sink

    def read(self, topic: str, *, committed_only: bool, marker: bytes) -> list[bytes]:
        from kafka import KafkaConsumer

        reader = KafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed" if committed_only else "read_uncommitted",
        )
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        try:
            while marker not in values:
                assert time.monotonic() < deadline, f"{marker!r} never came: {values}"
                for batch in reader.poll(timeout_ms=200).values():
                    values.extend(r.value for r in batch)
        finally:
            reader.close()
        return values[: values.index(marker) + 1]

    def committed(self, group: str, topic: str) -> dict[TopicPartition, int]:
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KafkaTopicPartition

        reader = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False
        )
        try:
            found = {}
            for p in range(self._partition_count(topic)):
                offset = reader.committed(KafkaTopicPartition(topic, p))
                if offset is not None:
                    found[TopicPartition(topic, p)] = offset
            return found
        finally:
            reader.close()

    def close(self) -> None:
        for each in reversed(self._open):
            each.close(5.0)
        if self._producer is not None:
            self._producer.close(5)
        self._admin.close()
