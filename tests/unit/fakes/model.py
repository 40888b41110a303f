"""Time, the model and the inference thread, faked."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from sentistream.worker.core.ports import (
    InferenceError,
)

__all__ = ["FakeClassifier", "FakeClock", "ManualRunner"]

# -- time and the model ---------------------------------------------------------------------


class FakeClock:
    """Both clocks move only when the test calls :meth:`advance`."""

    def __init__(self, monotonic: float = 1_000.0, time: float = 1_700_000_000.0) -> None:
        self._monotonic = monotonic
        self._time = time

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._time

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self._monotonic += seconds
        self._time += seconds


class FakeClassifier:
    """One token id per word; a row with an even number of tokens is positive, odd negative.

    ``fail_on`` (token ids) makes any batch holding one of them raise :class:`InferenceError`;
    ``always_fail`` makes every call raise. ``calls`` keeps each batch it was given.
    """

    labels: tuple[str, ...] = ("negative", "positive")
    POSITIVE: Any = np.array([0.25, 0.75], dtype=np.float32)
    NEGATIVE: Any = np.array([0.8, 0.2], dtype=np.float32)

    def __init__(self, fail_on: Iterable[int] = (), *, always_fail: bool = False) -> None:
        self.fail_on = set(fail_on)
        self.always_fail = always_fail
        self.calls: list[list[list[int]]] = []

    @staticmethod
    def token_id(word: str) -> int:
        return zlib.crc32(word.encode("utf-8")) % 1_000_000 + 1

    def encode(self, text: str) -> list[int]:
        return [self.token_id(word) for word in text.split()]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """As the real classifier: the whole batch or, if one text raises, nothing."""
        return [self.encode(text) for text in texts]

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        self.calls.append([list(row) for row in ids])
        if self.always_fail:
            raise InferenceError("fake model always fails")
        bad = self.fail_on.intersection(i for row in ids for i in row)
        if bad:
            raise InferenceError(f"fake model chokes on token ids {sorted(bad)}")
        rows = [self.POSITIVE if len(row) % 2 == 0 else self.NEGATIVE for row in ids]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 2), np.float32)

    @classmethod
    def expected_label(cls, text: str) -> str:
        return "positive" if len(text.split()) % 2 == 0 else "negative"


# -- the inference thread ------------------------------------------------------------------

T = TypeVar("T")


class ManualRunner:
    """An inference thread the test drives: a submitted job runs only when the test calls
    :meth:`complete` (any pending job, so jobs can finish out of order), or when the loop
    waits for it: a wait without timeout always (a thread finishes in the end), a wait with
    one only if ``finish_on_wait`` is set; then it and the jobs before it run, as one thread
    would run them. A wait that does not finish returns at once: nothing sleeps.
    ``waits`` keeps each timeout the loop waited with (None: as long as it takes)."""

    def __init__(self, *, finish_on_wait: bool = True) -> None:
        self.finish_on_wait = finish_on_wait
        self.waits: list[float | None] = []
        self._jobs: list[tuple[Callable[[], Any], Future[Any]]] = []

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.append((fn, future))
        return future

    def complete(self, index: int = 0) -> None:
        """Run the ``index``-th job still pending (0: the oldest)."""
        fn, future = self._jobs.pop(index)
        try:
            future.set_result(fn())
        except BaseException as exc:  # kept in the future, as a thread's executor does
            future.set_exception(exc)

    def complete_all(self) -> None:
        while self._jobs:
            self.complete()

    def wait(self, future: Future[Any], timeout_s: float | None) -> bool:
        self.waits.append(timeout_s)
        if timeout_s is None or (self.finish_on_wait and timeout_s > 0):
            while not future.done() and self._jobs:
                self.complete()
        return future.done()
