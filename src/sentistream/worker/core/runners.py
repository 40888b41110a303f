"""Where work runs off the loop's thread: inference batches and model checks.

One family for both: :class:`ThreadRunner` (one background thread, jobs in the order
submitted) in the worker, :class:`InlineRunner` (at once, on the caller's thread) in tests
and the synchronous path. Either way a job's outcome, result or exception, is kept in its
``Future``, as a thread's would be.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any, Protocol, TypeVar

__all__ = ["InlineRunner", "Runner", "ThreadRunner"]

T = TypeVar("T")


class Runner(Protocol):
    def submit(self, fn: Callable[[], T]) -> Future[T]: ...
    def wait(self, future: Future[Any], timeout_s: float | None) -> bool:
        """Wait for ``future`` (None: as long as it takes); True when it is done."""


class InlineRunner:
    """Runs each job at once on the caller's thread."""

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn())
        except BaseException as exc:  # the caller reads it from the future
            future.set_exception(exc)
        return future

    def wait(self, future: Future[Any], timeout_s: float | None) -> bool:
        return future.done()


class ThreadRunner:
    """One background thread: jobs run one at a time, in the order submitted."""

    def __init__(self, name: str = "sentistream-runner") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        return self._executor.submit(fn)

    def wait(self, future: Future[Any], timeout_s: float | None) -> bool:
        done, _ = wait_for([future], timeout=timeout_s)
        return bool(done)

    def close(self) -> None:
        """Let a running job finish on its own; drop the queued ones."""
        self._executor.shutdown(wait=False, cancel_futures=True)
