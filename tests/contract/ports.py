"""How the contract tests call the ports: the one place that knows their exact signatures
(poll's timeout unit, how a delivery says it is done), so a port change edits only this."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sentistream.worker.core.messages import InputRecord
from sentistream.worker.core.ports import (
    Delivered,
    Delivery,
    Outgoing,
    Sink,
    Source,
    TopicPartition,
    failure_of,
    when_delivered,
)

__all__ = [
    "delivered_partition",
    "is_done",
    "on_success",
    "poll",
    "poll_until",
    "send",
    "send_failure",
]


def poll(
    source: Source, timeout_s: float, max_records: int
) -> Mapping[TopicPartition, Sequence[InputRecord]]:
    return source.poll(timeout_s, max_records)


def poll_until(
    source: Source,
    count: int,
    *,
    max_records: int = 500,
    timeout_s: float = 30.0,
    polls: list[Mapping[TopicPartition, Sequence[InputRecord]]] | None = None,
) -> dict[TopicPartition, list[InputRecord]]:
    """Poll until ``count`` records came, never asking for more (each poll's batch kept in
    ``polls``)."""
    got: dict[TopicPartition, list[InputRecord]] = {}
    deadline = time.monotonic() + timeout_s
    while (left := count - sum(len(r) for r in got.values())) > 0:
        assert time.monotonic() < deadline, f"{count} records wanted, got {got}"
        batch = poll(source, 0.2, min(max_records, left))
        if polls is not None and batch:
            polls.append(batch)
        for tp, records in batch.items():
            got.setdefault(tp, []).extend(records)
    return got


def send(
    sink: Sink,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = b"k",
    headers: Sequence[tuple[str, Any]] = (),
    partition: int | None = None,
) -> Delivery:
    return sink.send(Outgoing(topic, key, value, list(headers), partition))


def is_done(delivery: Delivery) -> bool:
    return delivery.done()


def send_failure(delivery: Delivery) -> BaseException | None:
    """The delivery's error once done (None: acknowledged)."""
    assert is_done(delivery)
    return failure_of(delivery)


def on_success(delivery: Delivery, fn: Callable[[Any], object]) -> None:
    """Run ``fn(result)`` when the delivery is acknowledged."""
    when_delivered(delivery, fn)


def delivered_partition(result: Delivered | None) -> int:
    """The partition a delivery's result names."""
    assert result is not None
    return result.partition
