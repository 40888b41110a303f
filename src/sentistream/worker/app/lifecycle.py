"""The worker process's life: stop and reload requests, health and readiness for the probes,
and the shutdown deadline.

**Signals.** The Python handlers installed for SIGTERM, SIGINT and SIGHUP do nothing:
``signal.set_wakeup_fd`` makes the interpreter's C-level handler write each signal's number
to a pipe, and a daemon thread reads it and calls :meth:`Lifecycle.request_stop` or
:meth:`Lifecycle.request_reload` there. A handler that logged or set an ``Event`` itself could
be entered a second time by a second signal (coreutils ``timeout`` signals the command and
then its process group) while the first call held the event's lock: the main thread then
deadlocks inside ``Event.set()``. Taking no lock in the handler makes that impossible.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from sentistream.worker.app.connect import ConnectionState
from sentistream.worker.core.deadline import Deadline
from sentistream.worker.core.loop import Worker
from sentistream.worker.core.model_slot import ModelSlot
from sentistream.worker.settings import WorkerSettings

__all__ = ["Lifecycle", "SignalWatcher"]

log = logging.getLogger("sentistream.worker")

#: The signals the worker answers: the first two stop it, the last reloads the model.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP


class Lifecycle:
    """What the signal watcher, the HTTP probes and the main thread share."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.stop_requested_at: float | None = None
        self.connection = ConnectionState(started_at=time.monotonic())
        self.worker: Worker | None = None
        self.models: ModelSlot | None = None

    def request_reload(self) -> None:
        """Look for a new model at the next step (SIGHUP)."""
        if self.models is None:
            log.info("received SIGHUP before the model was loaded: nothing to reload")
            return
        log.info("received SIGHUP: checking %s for a new model", self.settings.model_dir)
        self.models.request_check()

    def request_stop(self, why: str) -> None:
        """Finish the batch in hand and stop (SIGTERM, SIGINT); ``why`` names the cause."""
        log.info("received %s: finishing the batch in hand", why)
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        self.stop.set()
        if self.worker is not None:
            self.worker.stop()

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    def healthy(self) -> tuple[bool, str]:
        now = time.monotonic()
        state = self.worker.state if self.worker is not None else None
        if state is None or state.last_step_at is None:
            return self.connection.health(now, self.settings.health_stall_s)
        idle = now - state.last_step_at
        if idle > self.settings.health_stall_s:
            return False, f"no loop progress for {idle:.0f} s"
        if state.oldest_unacked_at is not None:
            waiting = now - state.oldest_unacked_at
            if waiting > self.settings.max_unacked_age_s:
                return (
                    False,
                    f"records produced {waiting:.0f} s ago still not acknowledged by Kafka",
                )
        return True, f"last step {idle:.1f} s ago"

    def ready(self) -> tuple[bool, str]:
        """From the loop's last snapshot: the HTTP thread never calls into the consumer. A
        worker asked to stop is not ready (it takes no more work)."""
        if self.stopping:
            return False, "stopping"
        if self.worker is None:
            return False, "connecting to Kafka"
        state = self.worker.state
        if state.assigned == 0:
            return False, "no partitions assigned yet"
        paused = ", fetching paused (in-flight limit)" if state.paused else ""
        return True, f"{state.assigned} partition(s) assigned{paused}"

    def shutdown_deadline(self) -> Deadline:
        """When the shutdown must be over: ``--shutdown-timeout-s`` after the stop request
        (after now, when none came: a stop for a fatal error)."""
        started = self.stop_requested_at or time.monotonic()
        return Deadline(started + self.settings.shutdown_timeout_s, _MONOTONIC)

    def left(self, keep_s: float = 0.0) -> float:
        """Seconds of the shutdown budget left, less ``keep_s`` for the steps after this one."""
        return self.shutdown_deadline().left(keep_s)


class _Monotonic:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


_MONOTONIC = _Monotonic()


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: nothing (the wakeup pipe carries the signal)."""


class SignalWatcher:
    """Turns the stop and reload signals into calls on a thread of its own (see the module
    docstring). Install it from the main thread; :meth:`close` restores what was there."""

    def __init__(self, on_stop: Callable[[str], None], on_reload: Callable[[], None]) -> None:
        self._on_stop = on_stop
        self._on_reload = on_reload
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._previous_fd = -1
        self._previous: dict[signal.Signals, object] = {}
        self._thread = threading.Thread(target=self._run, name="sentistream-signals", daemon=True)

    def install(self) -> SignalWatcher:
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in (*STOP_SIGNALS, RELOAD_SIGNAL):
            self._previous[signum] = signal.signal(signum, _ignore)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                received = os.read(self._read_fd, 64)
            except OSError:  # closed
                return
            if not received:
                return
            for number in received:
                self._dispatch(number)

    def _dispatch(self, number: int) -> None:
        if number == RELOAD_SIGNAL:
            self._on_reload()
        elif number in STOP_SIGNALS:
            self._on_stop(signal.Signals(number).name)

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        os.close(self._write_fd)  # the thread's read returns b"": it ends
        self._thread.join(1.0)
        with contextlib.suppress(OSError):
            os.close(self._read_fd)
