"""The ports' contract: one set of tests every implementation passes (the fakes of
``tests/unit/fakes.py`` and both real backends on the test broker).

Each class is a mixin after arroyo's ``tests/backends/mixins.py``: a subclass per
implementation provides the ``backend`` fixture (:class:`~tests.contract.backends.Backend`)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sentistream.worker.core.ports import (
    SinkUnavailable,
    TopicPartition,
    TransactionAborted,
    failure_of,
)
from tests.contract.backends import Backend
from tests.contract.ports import (
    delivered_partition,
    is_done,
    on_success,
    poll,
    poll_until,
    send,
    send_failure,
)

__all__ = ["SinkContract", "SourceContract", "TransactionalContract"]


def _values(n: int, prefix: str = "v") -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(n)]


class SourceContract:
    """What a :class:`~sentistream.worker.core.ports.Source` promises."""

    def test_poll_keeps_each_partitions_order_and_max_records(self, backend: Backend) -> None:
        topic = backend.topic(partitions=3)
        source = backend.source(topic)
        backend.produce(topic, [(i % 3, v) for i, v in enumerate(_values(30))])
        polls: list[Any] = []
        got = poll_until(source, 30, max_records=4, polls=polls)
        assert all(sum(len(r) for r in batch.values()) <= 4 for batch in polls)
        for tp, records in got.items():
            assert [r.offset for r in records] == list(range(10)), tp
            assert [r.value for r in records] == _values(30)[tp.partition :: 3]
            assert all((r.topic, r.partition) == tp for r in records)
        assert not poll(source, 0.2, 10)

    def test_a_paused_partition_gives_nothing_until_resumed(self, backend: Backend) -> None:
        topic = backend.topic(partitions=2)
        source = backend.source(topic)
        paused = TopicPartition(topic, 0)
        source.pause([paused])
        backend.produce(topic, [(0, b"a0"), (1, b"b0"), (0, b"a1")])
        got = poll_until(source, 1)
        assert set(got) == {TopicPartition(topic, 1)}
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert paused not in poll(source, 0.1, 10)
        source.resume([paused])
        got = poll_until(source, 2)
        assert [r.value for r in got[paused]] == [b"a0", b"a1"]

    def test_commit_stores_the_next_offsets_and_lag_counts_what_is_left(
        self, backend: Backend
    ) -> None:
        topic = backend.topic(partitions=2)
        group = backend.group()
        source = backend.source(topic, group=group)
        backend.produce(topic, [(0, v) for v in _values(6)] + [(1, b"only")])
        got = poll_until(source, 7, max_records=1)
        assert source.lag() == {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0}
        offsets = {tp: records[-1].offset + 1 for tp, records in got.items()}
        assert source.commit(offsets, 10.0) == set()
        assert backend.committed(group, topic) == offsets

    def test_lag_is_what_the_partition_holds_past_the_position(self, backend: Backend) -> None:
        topic = backend.topic(partitions=1)
        source = backend.source(topic)
        backend.produce(topic, [(0, v) for v in _values(10)])
        poll_until(source, 3, max_records=3)
        lag = source.lag()
        assert lag == {TopicPartition(topic, 0): 7}, lag

    def test_rebalances_are_counted_and_a_lost_partitions_commit_is_left_out(
        self, backend: Backend
    ) -> None:
        topic = backend.topic(partitions=2)
        group = backend.group()
        first = backend.source(topic, group=group)
        assert first.rebalances() == 1
        assert first.input_partitions() == 2
        second = backend.join(topic, group)
        backend.settle([first, second], 2)
        assert first.rebalances() == 2
        assert second.rebalances() >= 1
        kept, lost = first.assignment(), second.assignment()
        offsets = {TopicPartition(topic, p): 1 for p in range(2)}
        assert first.commit(offsets, 10.0) == lost
        assert backend.committed(group, topic) == dict.fromkeys(kept, 1)

    def test_a_commit_while_the_group_prepares_a_rebalance_goes_through(
        self, backend: Backend
    ) -> None:
        """Until the member has rejoined, its generation is still current: Kafka takes its
        commits (CommitRefused comes only once the group has moved to a generation without
        it, e.g. after its session timed out)."""
        topic = backend.topic(partitions=2)
        group = backend.group()
        first = backend.source(topic, group=group)
        backend.join(topic, group)  # the first member has not rejoined yet
        offsets = {TopicPartition(topic, 0): 1}
        assert first.commit(offsets, 10.0) == set()
        assert backend.committed(group, topic) == offsets


class SinkContract:
    """What a :class:`~sentistream.worker.core.ports.Sink` promises."""

    def test_sends_are_delivered_to_the_partition_asked_for_by_flush(
        self, backend: Backend
    ) -> None:
        topic = backend.topic(partitions=3)
        sink = backend.sink()
        acked: list[int] = []
        deliveries = []
        for i, value in enumerate(_values(9)):
            delivery = send(sink, topic, value, partition=i % 3)
            on_success(delivery, lambda metadata: acked.append(delivered_partition(metadata)))
            deliveries.append(delivery)
        assert sink.flush(10.0) is True
        assert all(is_done(d) and send_failure(d) is None for d in deliveries)
        assert sorted(acked) == sorted(i % 3 for i in range(9))
        assert backend.read(topic, committed_only=False, marker=b"v8")[-1] == b"v8"

    def test_partitions_are_the_topics(self, backend: Backend) -> None:
        sink = backend.sink()
        assert sink.partitions(backend.topic(partitions=3)) == 3
        assert sink.partitions(backend.topic(partitions=1)) == 1

    def test_a_send_without_a_partition_is_delivered_somewhere(self, backend: Backend) -> None:
        topic = backend.topic(partitions=2)
        sink = backend.sink()
        delivery = send(sink, topic, b"anywhere", key=None)
        assert sink.flush(10.0)
        assert send_failure(delivery) is None

    @pytest.mark.parametrize(
        ("key", "value", "headers", "refusal"),
        [
            pytest.param(b"k", b"v", [("h", None)], TypeError, id="null-header-value"),
            pytest.param(b"k", b"v", [("h", "text")], TypeError, id="str-header-value"),
            pytest.param(None, None, [], ValueError, id="neither-key-nor-value"),
        ],
    )
    def test_send_refuses_a_malformed_record_at_once(
        self,
        backend: Backend,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, Any]],
        refusal: type[Exception],
    ) -> None:
        topic = backend.topic()
        sink = backend.sink()
        with pytest.raises(refusal):
            send(sink, topic, value, key=key, headers=headers)
        after = send(sink, topic, b"after")  # the record's fault, not the sink's
        assert sink.flush(10.0)
        assert send_failure(after) is None
        assert backend.read(topic, committed_only=False, marker=b"after") == [b"after"]

    def test_send_refuses_a_record_over_the_request_size_as_the_records_fault(
        self, backend: Backend
    ) -> None:
        topic = backend.topic()
        sink = backend.sink()
        with pytest.raises(backend.size_error) as refused:
            send(sink, topic, b"x" * (backend.max_request_bytes + 1))
        assert not isinstance(refused.value, SinkUnavailable)
        after = send(sink, topic, b"after")
        assert sink.flush(10.0)
        assert send_failure(after) is None

    def test_flush_returns_within_its_timeout_saying_whether_all_are_done(
        self, backend: Backend
    ) -> None:
        topic = backend.topic()
        sink = backend.sink()
        deliveries = [send(sink, topic, v) for v in _values(2000)]
        started = time.monotonic()
        flushed = sink.flush(0.0)
        assert time.monotonic() - started < 1.0
        assert flushed is all(is_done(d) for d in deliveries)
        assert sink.flush(30.0) is True
        assert all(is_done(d) for d in deliveries)


class TransactionalContract:
    """What a :class:`~sentistream.worker.core.ports.TransactionalSink` and a
    :class:`~sentistream.worker.core.ports.TransactionalSource` promise."""

    def _batch(self, backend: Backend, n: int) -> tuple[Any, str, str, dict[TopicPartition, int]]:
        source_topic, out = backend.topic(), backend.topic()
        group = backend.group()
        source = backend.source(source_topic, group=group, transactional=True)
        backend.produce(source_topic, [(0, v) for v in _values(n, "in")])
        got = poll_until(source, n)
        offsets = {tp: records[-1].offset + 1 for tp, records in got.items()}
        return source, group, out, offsets

    def test_a_committed_transaction_is_visible_with_its_offsets_and_callbacks(
        self, backend: Backend
    ) -> None:
        source, group, out, offsets = self._batch(backend, 3)
        sink = backend.transactional_sink()
        acked: list[Any] = []
        sink.begin()
        deliveries = [send(sink, out, v) for v in _values(3)]
        for delivery in deliveries:
            on_success(delivery, acked.append)
        assert sink.flush(10.0)
        assert all(failure_of(d) is None for d in deliveries)
        assert not any(is_done(d) for d in deliveries)  # a delivery succeeds on commit
        assert acked == []
        batch_group = source.batch_group()
        assert batch_group is not None
        assert source.still_current(batch_group)
        sink.send_offsets(offsets, batch_group, 10.0)
        sink.commit(10.0)
        assert all(is_done(d) and send_failure(d) is None for d in deliveries)
        assert len(acked) == 3
        assert backend.read(out, committed_only=True, marker=b"v2") == _values(3)
        assert backend.committed(group, source_topic_of(offsets)) == offsets

    def test_an_aborted_transaction_is_invisible_and_runs_no_callback(
        self, backend: Backend
    ) -> None:
        out = backend.topic()
        sink = backend.transactional_sink()
        acked: list[Any] = []
        sink.begin()
        aborted = [send(sink, out, value) for value in (b"aborted0", b"aborted1")]
        for delivery in aborted:
            on_success(delivery, acked.append)
        assert sink.flush(10.0)
        sink.abort(10.0)
        assert all(isinstance(send_failure(d), TransactionAborted) for d in aborted)
        sink.begin()
        send(sink, out, b"marker")
        assert sink.flush(10.0)
        sink.commit(10.0)
        assert acked == []
        assert backend.read(out, committed_only=True, marker=b"marker") == [b"marker"]

    def test_rewind_reads_again_from_the_committed_offsets(self, backend: Backend) -> None:
        source, _group, _out, offsets = self._batch(backend, 4)
        tp = next(iter(offsets))
        sink = backend.transactional_sink()
        sink.begin()
        batch_group = source.batch_group()
        sink.send_offsets({tp: 2}, batch_group, 10.0)
        sink.commit(10.0)
        source.rewind(10.0)
        again = poll_until(source, 2)
        assert [r.offset for r in again[tp]] == [2, 3]


def source_topic_of(offsets: dict[TopicPartition, int]) -> str:
    (topic,) = {tp.topic for tp in offsets}
    return topic
