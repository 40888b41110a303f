"""``sentistream produce``: replay tweets from a file into a Kafka topic.

A ``.csv`` file is read as Sentiment140's layout (its ids are kept); any other file is one
tweet per line, numbered from 1. Each tweet is sent as ``{"id": ..., "text": ...}`` keyed by
its id, so the worker keeps per-tweet order and the output can be joined back.

The producer that sends them is the kafka-python backend's
(:func:`~sentistream.worker.backends.kafka_python.tools.open_producer`: every record
acknowledged by all in-sync replicas, never having the broker create a topic); :func:`replay`
is the sending.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentistream.dataset import DatasetError, iter_sentiment140

__all__ = [
    "Pacer",
    "ReplayError",
    "ReplayItem",
    "Replayed",
    "read_tweets",
    "replay",
]


class ReplayError(ValueError):
    """The input file cannot be replayed; the message says why."""


@dataclass(frozen=True)
class ReplayItem:
    id: str
    text: str

    def key(self) -> bytes:
        return self.id.encode()

    def value(self) -> bytes:
        return json.dumps({"id": self.id, "text": self.text}, ensure_ascii=False).encode()


def read_tweets(path: Path) -> list[ReplayItem]:
    """All tweets of ``path``; raises :class:`ReplayError` for a file it cannot use."""
    if not path.is_file():
        raise ReplayError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        items = list(_from_sentiment140(path))
        if not items:
            raise ReplayError(f"{path}: no tweets (the file is empty)")
        return items
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ReplayError(
            f"{path}: not UTF-8 text ({exc}); a .csv is read as Sentiment140"
        ) from exc
    items = [ReplayItem(str(n), line) for n, line in enumerate(lines, 1) if line.strip()]
    if not items:
        raise ReplayError(f"{path}: no tweets (the file is empty)")
    return items


def _from_sentiment140(path: Path) -> Iterator[ReplayItem]:
    try:
        for row in iter_sentiment140(path):
            yield ReplayItem(row.id or str(row.line), row.text)
    except DatasetError as exc:
        raise ReplayError(str(exc)) from exc


class Pacer:
    """Spaces sends ``1/rate`` seconds apart on average (no pacing when rate is None)."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = clock()

    def wait(self) -> None:
        if not self._interval:
            return
        delay = self._next - self._clock()
        if delay > 0:
            self._sleep(delay)
        self._next = max(self._next, self._clock() - self._interval) + self._interval


@dataclass
class Replayed:
    """What :func:`replay` did."""

    sent: int = 0
    failures: list[Exception] = field(default_factory=list)
    """Records Kafka did not acknowledge, by the error each got."""
    elapsed_s: float = 0.0
    interrupted: bool = False
    """Ctrl-C ended the replay (not flushed: what was in flight may be lost)."""


def replay(
    producer: Any,
    topic: str,
    items: Sequence[ReplayItem],
    *,
    pacer: Pacer,
    loop: bool = False,
    progress: Callable[[Sequence[ReplayItem]], Iterable[ReplayItem]] = lambda items: items,
    clock: Callable[[], float] = time.monotonic,
) -> Replayed:
    """Send ``items`` to ``topic`` (from the start again and again with ``loop``, until
    Ctrl-C) and wait for Kafka's acknowledgements. ``progress`` wraps each pass (a progress
    bar). The producer's errors (``KafkaError``) propagate; closing it is the caller's."""
    done = Replayed()
    started = clock()
    try:
        while True:
            for item in progress(items):
                pacer.wait()
                future = producer.send(topic, key=item.key(), value=item.value())
                future.add_errback(done.failures.append)
                done.sent += 1
            if not loop:
                break
        producer.flush()
    except KeyboardInterrupt:
        done.interrupted = True
    done.elapsed_s = clock() - started
    return done
