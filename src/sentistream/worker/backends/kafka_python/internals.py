"""Every read or call of kafka-python's private state, in one place.

kafka-python 3.0 has no public API for five things the worker needs; each is reached here and
nowhere else. Each access names the attribute it needs directly (no ``getattr`` default), so
a kafka-python release that renamed one fails loudly, and ``tests/unit/test_kafka_internals.py``
checks every one of them against the installed client's real objects. ``pyproject.toml``
bounds kafka-python to the releases those tests passed on.

1. :func:`finish_lost_join`: the coordinator's join state (``_coordinator``, ``_join_task``,
   ``rejoining``), to repair a finished group join that kafka-python lost.
2. :func:`unreadable_position`: the fetcher's in-line records (``_fetcher``,
   ``_next_partition_records``), to find the record a ``CorruptRecordError`` is about.
3. :func:`position`: the subscription state's position (``_subscription``), read without
   the coordinator round trip the public ``position()`` may make.
4. :func:`transaction_manager` and :func:`wake_sender`: the producer's transaction manager
   and sender, to run transactional calls with a deadline (the public ones wait forever).
5. :func:`force_close`: the sender, to finish a close that timed out.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition

__all__ = [
    "KafkaInternalsMissing",
    "check_consumer",
    "check_producer",
    "finish_lost_join",
    "force_close",
    "position",
    "transaction_manager",
    "unreadable_position",
    "wake_sender",
]

log = logging.getLogger("sentistream.worker.backends.kafka_python")


class KafkaInternalsMissing(Exception):  # noqa: N818
    """The installed kafka-python lacks a private attribute this module relies on."""


def _need(obj: object, name: str) -> Any:
    try:
        return getattr(obj, name)
    except AttributeError:
        raise KafkaInternalsMissing(
            f"kafka-python {_version()} has no {type(obj).__name__}.{name}, which sentistream "
            "relies on; install a kafka-python release pyproject.toml allows"
        ) from None


def _version() -> str:
    import kafka

    return str(getattr(kafka, "__version__", "?"))


def finish_lost_join(consumer: KafkaConsumer) -> bool:
    """Rejoin when kafka-python (3.0.12 and earlier 3.0 releases) lost a finished group join.

    A rebalance the group leader starts because the subscribed topics' metadata changed (a
    partition added, or the snapshot taken at start) is "needed" only until the leader has
    computed the assignment. If the poll's timeout runs out while the SyncGroup request is
    in flight (a poll with ``timeout_ms=0``, which the loop makes whenever a micro-batch is
    due), the next poll sees no rejoin needed and never applies the finished join: the member
    holds no partitions (or its old ones), sends no heartbeats and labels nothing, while the
    loop runs on. Asking for a rejoin makes the next poll send a fresh JoinGroup, which
    completes normally because a requested rejoin stays needed until it is applied. Returns
    True when it asked.
    """
    coordinator = _need(consumer, "_coordinator")
    join = _need(coordinator, "_join_task")
    if join is None or not join.is_done:
        return False
    if not _need(coordinator, "rejoining") or coordinator.need_rejoin():
        return False
    log.warning("consumer: kafka-python finished a group join without applying it; rejoining")
    coordinator.request_rejoin()
    return True


def unreadable_position(consumer: KafkaConsumer) -> tuple[KafkaTopicPartition, int] | None:
    """The partition and offset of the record a ``CorruptRecordError`` from ``poll`` is about:
    the fetcher's in-line records, whose next offset is the bad record's (kafka-python raises
    from there when no record came before the bad one, and at the next poll otherwise). None
    when the fetcher holds no in-line records."""
    pending = _need(_need(consumer, "_fetcher"), "_next_partition_records")
    if pending is None:
        return None
    tp, offset = pending.topic_partition, pending.next_fetch_offset
    return (tp, offset) if isinstance(offset, int) else None


def position(consumer: KafkaConsumer, tp: KafkaTopicPartition) -> int | None:
    """The consumer's position in ``tp`` from its subscription state (never fetched: the
    public ``position()`` may block on a coordinator round trip). Known from the committed
    offset as soon as a poll after the assignment has looked it up; a re-assigned partition
    starts from a fresh state. None when unknown or no longer assigned."""
    subscription = _need(consumer, "_subscription")
    try:
        found = subscription.position(tp)
    except KeyError:  # revoked since the assignment was read
        return None
    return None if found is None else int(found.offset)


def transaction_manager(producer: KafkaProducer) -> Any:
    """The transactional producer's manager: ``begin_commit``, ``begin_abort`` and
    ``send_offsets_to_transaction`` return a result the caller can wait on with a timeout."""
    return _need(producer, "_transaction_manager")


def wake_sender(producer: KafkaProducer) -> None:
    """Make the sender thread send what a transactional call just queued."""
    _need(producer, "_sender").wakeup()


def force_close(producer: KafkaProducer) -> None:
    """Finish a close whose flush ran out of time. kafka-python 3.0.12's ``close()`` flushes
    first and raises when the time is up, before it stops its sender; its ``__del__`` then
    closes again at exit and prints a traceback."""
    _need(producer, "_sender").force_close()
    _need(producer, "_closed")
    producer._closed = True


def check_consumer(consumer: KafkaConsumer) -> None:
    """Raise :class:`KafkaInternalsMissing` unless every private attribute used on a consumer
    is there (the test suite calls this on a real consumer)."""
    coordinator = _need(consumer, "_coordinator")
    _need(coordinator, "_join_task")
    _need(coordinator, "rejoining")
    _need(coordinator, "need_rejoin")
    _need(coordinator, "request_rejoin")
    _need(_need(consumer, "_fetcher"), "_next_partition_records")
    _need(_need(consumer, "_subscription"), "position")


def check_producer(producer: KafkaProducer) -> None:
    """The same for a producer (a transactional one also has its manager's calls)."""
    sender = _need(producer, "_sender")
    _need(sender, "wakeup")
    _need(sender, "force_close")
    _need(producer, "_closed")
    manager = _need(producer, "_transaction_manager")
    if manager is not None:
        for name in ("begin_commit", "begin_abort", "send_offsets_to_transaction", "has_error"):
            _need(manager, name)
        for name in ("has_fatal_error", "last_error"):
            _need(manager, name)
