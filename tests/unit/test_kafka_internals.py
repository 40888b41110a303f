"""kafka-python's private state is read in one module, and a release without an attribute it
reads fails loudly there (never a silent no-op). The accesses themselves are checked against
real clients in tests/integration/test_kafka_internals.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sentistream.worker.backends.kafka_python import internals


def _consumer(**overrides: Any) -> Any:
    coordinator = SimpleNamespace(
        _join_task=SimpleNamespace(is_done=True),
        rejoining=True,
        need_rejoin=lambda: False,
        request_rejoin=lambda: None,
    )
    parts = {
        "_coordinator": coordinator,
        "_fetcher": SimpleNamespace(_next_partition_records=None),
        "_subscription": SimpleNamespace(position=lambda tp: None),
    }
    parts.update(overrides)
    return SimpleNamespace(**parts)


@pytest.mark.parametrize("missing", ["_coordinator", "_fetcher", "_subscription"])
def test_a_consumer_without_an_attribute_relied_on_is_refused_by_name(missing: str) -> None:
    consumer = _consumer()
    delattr(consumer, missing)
    with pytest.raises(internals.KafkaInternalsMissing, match=missing):
        internals.check_consumer(consumer)


def test_the_lost_join_repair_fails_loudly_without_the_join_state() -> None:
    consumer = _consumer(_coordinator=SimpleNamespace(rejoining=True))
    with pytest.raises(internals.KafkaInternalsMissing, match="_join_task"):
        internals.finish_lost_join(consumer)


def test_the_lost_join_repair_asks_for_a_rejoin_only_in_the_lost_state() -> None:
    asked: list[bool] = []
    consumer = _consumer()
    consumer._coordinator.request_rejoin = lambda: asked.append(True)
    assert internals.finish_lost_join(consumer) is True
    assert asked == [True]
    consumer._coordinator.need_rejoin = lambda: True  # a rejoin already pending
    assert internals.finish_lost_join(consumer) is False
    consumer._coordinator._join_task = None  # no join at all
    assert internals.finish_lost_join(consumer) is False


def test_the_unreadable_position_comes_from_the_fetchers_inline_records() -> None:
    records = SimpleNamespace(topic_partition=("t", 2), next_fetch_offset=41)
    consumer = _consumer(_fetcher=SimpleNamespace(_next_partition_records=records))
    assert internals.unreadable_position(consumer) == (("t", 2), 41)
    assert internals.unreadable_position(_consumer()) is None


def test_a_producer_without_its_sender_is_refused_by_name() -> None:
    producer = SimpleNamespace(_closed=False, _transaction_manager=None)
    with pytest.raises(internals.KafkaInternalsMissing, match="_sender"):
        internals.check_producer(producer)
    with pytest.raises(internals.KafkaInternalsMissing, match="_sender"):
        internals.force_close(producer)


def test_a_transaction_manager_without_a_call_relied_on_is_refused_by_name() -> None:
    sender = SimpleNamespace(wakeup=lambda: None, force_close=lambda: None)
    manager = SimpleNamespace(begin_commit=None, begin_abort=None, has_error=None)
    producer = SimpleNamespace(_sender=sender, _closed=False, _transaction_manager=manager)
    with pytest.raises(internals.KafkaInternalsMissing, match="send_offsets_to_transaction"):
        internals.check_producer(producer)
