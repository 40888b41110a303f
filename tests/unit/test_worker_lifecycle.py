"""The process lifecycle: signals are handled off the main thread and without locks in the
handler, a worker asked to stop is not ready, and the shutdown budget is one deadline."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from sentistream.worker.app import lifecycle
from sentistream.worker.app.lifecycle import Lifecycle, SignalWatcher
from sentistream.worker.settings import WorkerSettings
from tests.unit.test_worker_loop import make, texts


def test_a_worker_asked_to_stop_is_not_ready_while_it_drains():
    h = make(texts(2), batch=2, auto_ack=True)
    h.worker.step()
    process = Lifecycle(WorkerSettings())
    process.worker = h.worker
    assert process.ready() == (True, "1 partition(s) assigned")
    process.request_stop("SIGTERM")
    assert process.ready() == (False, "stopping")
    assert h.worker.stopping


def test_the_shutdown_deadline_starts_at_the_stop_request():
    process = Lifecycle(WorkerSettings(shutdown_timeout_s=20))
    process.request_stop("SIGTERM")
    assert process.stop_requested_at is not None
    deadline = process.shutdown_deadline()
    assert deadline.at == pytest.approx(process.stop_requested_at + 20)
    assert 19 < process.left() <= 20
    assert 14 < process.left(keep_s=5) <= 15
    assert process.left(keep_s=100) == 0.0


class _Calls:
    def __init__(self, expected: int) -> None:
        self.stops: list[tuple[str, int]] = []
        self.reloads: list[int] = []
        self._expected = expected
        self.done = threading.Event()

    def stop(self, why: str) -> None:
        self.stops.append((why, threading.get_ident()))
        self._check()

    def reload(self) -> None:
        self.reloads.append(threading.get_ident())
        self._check()

    def _check(self) -> None:
        if len(self.stops) + len(self.reloads) >= self._expected:
            self.done.set()


def test_signals_are_handled_on_the_watchers_thread_and_the_handler_does_nothing():
    calls = _Calls(expected=3)
    watcher = SignalWatcher(calls.stop, calls.reload).install()
    try:
        # The Python-level handler takes no lock and logs nothing: it is the no-op.
        assert signal.getsignal(signal.SIGTERM) is lifecycle._ignore
        assert signal.getsignal(signal.SIGHUP) is lifecycle._ignore
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert calls.done.wait(5)
    finally:
        watcher.close()
    main = threading.get_ident()
    assert sorted(why for why, _ in calls.stops) == ["SIGINT", "SIGTERM"]
    assert len(calls.reloads) == 1
    assert all(thread != main for _, thread in calls.stops)
    assert calls.reloads[0] != main


def test_a_burst_of_stop_signals_while_the_main_thread_sets_the_stop_event_never_hangs():
    # The deadlock this design removes: a handler calling Event.set() re-entered by a second
    # signal while the first call held the event's lock. Here the main thread sets the same
    # event in a loop while signals arrive; every one of them must still be handled.
    process = Lifecycle(WorkerSettings())
    count = 50
    handled = threading.Semaphore(0)

    def on_stop(why: str) -> None:
        process.request_stop(why)
        handled.release()

    watcher = SignalWatcher(on_stop, lambda: None).install()
    try:
        for _ in range(count):
            os.kill(os.getpid(), signal.SIGTERM)
            process.stop.set()
        # Signals of one kind may coalesce in the pipe's reader, never be lost all: at least
        # one was handled, and the process is stopping.
        assert handled.acquire(timeout=5)
    finally:
        watcher.close()
    assert process.stopping


def test_closing_the_watcher_restores_the_previous_handlers():
    before = signal.getsignal(signal.SIGTERM)
    watcher = SignalWatcher(lambda why: None, lambda: None).install()
    watcher.close()
    assert signal.getsignal(signal.SIGTERM) is before
