"""What both transactional sinks share: the deliveries held in the open transaction, the
rule for closing with one open, and the words of every refusal (so a fenced worker, or one
whose principal lacks Write on its transactional id, says the same on either client)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sentistream.worker.core.exactly_once import HeldDelivery
from sentistream.worker.core.ports import Delivery, TransactionFailed

__all__ = ["OpenTransaction", "Refusal", "close_transaction"]

log = logging.getLogger("sentistream.worker.backends")


class Refusal:
    """The :class:`TransactionFailed` messages, for a sink with ``transactional_id`` (and
    ``--transaction-timeout-s`` ``budget_s``, which a call that timed out names)."""

    def __init__(self, transactional_id: str, budget_s: float | None = None) -> None:
        self.transactional_id = transactional_id
        self.budget_s = budget_s

    def cannot_initialise(self, exc: BaseException) -> TransactionFailed:
        return TransactionFailed(
            f"cannot initialise transactions as {self.transactional_id!r}: {exc}"
        )

    @staticmethod
    def cannot_begin(exc: BaseException) -> TransactionFailed:
        return TransactionFailed(f"cannot begin a transaction: {exc}")

    def not_authorized(self, what: str) -> TransactionFailed:
        return TransactionFailed(
            f"{what}: not authorized to use transactional id {self.transactional_id!r} "
            "(the principal needs Write on that TransactionalId)"
        )

    def fenced(self, what: str, cause: str) -> TransactionFailed:
        return TransactionFailed(
            f"{what}: fenced: another worker took over transactional id "
            f"{self.transactional_id!r} ({cause})"
        )

    @staticmethod
    def fatal(what: str, detail: str) -> TransactionFailed:
        return TransactionFailed(f"{what}: the producer is in a fatal state ({detail})")

    def timed_out(self, what: str, left_s: float, detail: str = "") -> TransactionFailed:
        """A call that ran out of time: ``left_s`` was what the transaction had left for it."""
        suffix = f"; {detail}" if detail else ""
        if self.budget_s is None:
            return TransactionFailed(f"{what} did not finish within {left_s:.1f} s{suffix}")
        return TransactionFailed(
            f"{what} did not finish within {self.budget_s:g} s, the transaction timeout "
            f"({left_s:.1f} s were left for it{suffix})"
        )


class OpenTransaction:
    """The deliveries sent in the open transaction: released (their callbacks run) when it
    commits, discarded (they fail) when it aborts."""

    def __init__(self) -> None:
        self.held: list[HeldDelivery] = []
        self.sent = False
        """Anything sent since the sink started (a close then aborts what may be open)."""

    def begin(self) -> None:
        self.held = []

    def hold(self, produced: Delivery | None, error: BaseException | None = None) -> Delivery:
        """A send's delivery, held until the transaction ends (``produced`` None: the send
        failed at once with ``error``)."""
        held = HeldDelivery(produced, error)
        if produced is not None:
            self.sent = True
        self.held.append(held)
        return held

    def committed(self) -> None:
        held, self.held = self.held, []
        for delivery in held:
            delivery.release()

    def aborted(self) -> list[HeldDelivery]:
        """Discard the held deliveries; returns them (an abort may read why they failed)."""
        held, self.held = self.held, []
        for delivery in held:
            delivery.discard()
        return held


def close_transaction(
    transaction: OpenTransaction,
    abort: Callable[[float], None],
    timeout_s: float,
    *,
    usable: bool,
) -> None:
    """Abort the open transaction if anything was sent in it and the producer can still
    abort (``usable``); otherwise the broker aborts it after the transaction timeout."""
    if not (transaction.sent and usable):
        return
    try:
        abort(min(timeout_s, 5.0))
    except TransactionFailed as exc:
        log.info("open transaction left to the broker to abort: %s", exc)
