"""confluent-kafka's transactional producer as the loop's :class:`TransactionalSink`.

librdkafka's transactional calls take a timeout themselves, and say what a failure means
on the :class:`KafkaError` they raise: ``txn_requires_abort()`` (abort and go on:
:class:`TransactionAborted`), ``fatal()`` (fenced or broken: :class:`TransactionFailed`),
``retriable()`` (the call did not finish in time; it could be retried, but the worker's
deadline is spent: :class:`TransactionFailed`, so the worker exits and its restarted
instance, with the same ``transactional.id``, aborts what this one left open). An error
that is none of the three is a state the worker does not know how to leave: failed too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from sentistream.worker.backends.confluent.errors import kafka_exception_of
from sentistream.worker.backends.confluent.sink import ConfluentSink
from sentistream.worker.backends.confluent.source import Membership
from sentistream.worker.backends.transactional import OpenTransaction, Refusal, close_transaction
from sentistream.worker.core.ports import (
    Delivery,
    Outgoing,
    SinkUnavailable,
    TopicPartition,
    TransactionAborted,
    TransactionFailed,
)
from sentistream.worker.settings import WorkerSettings

__all__ = ["ConfluentTransactionalSink", "transaction_outcome"]

log = logging.getLogger(__name__)

_STATE = KafkaError._STATE
_FENCED = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)


def transaction_outcome(
    what: str,
    error: KafkaError,
    transactional_id: str,
    timeout_s: float,
    budget_s: float | None = None,
) -> TransactionAborted | TransactionFailed:
    """The port's outcome of a transactional call that failed with ``error`` (``timeout_s``:
    the call's own time; ``budget_s``: the transaction timeout)."""
    refusal = Refusal(transactional_id, budget_s)
    if error.fatal() or error.code() in _FENCED:
        if error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
            return refusal.not_authorized(what)
        if error.code() in _FENCED:
            return refusal.fenced(what, error.name())
        return refusal.fatal(what, error.str())
    if error.txn_requires_abort():
        return TransactionAborted(f"{what}: {error.str()}")
    if error.retriable():
        return refusal.timed_out(what, timeout_s, error.str())
    return TransactionFailed(f"{what}: {error.str()}")


def _error_of(exc: KafkaException) -> KafkaError:
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else KafkaError(KafkaError._FAIL, str(exc))


class ConfluentTransactionalSink(ConfluentSink):
    def __init__(self, settings: WorkerSettings) -> None:
        self.transactional_id = settings.effective_transactional_id()
        self._timeout_s = settings.transaction_timeout_s
        # The broker aborts a transaction left open this long (librdkafka: 1 s at least).
        open_ms = max(1_000, int(2 * self._timeout_s * 1000))
        super().__init__(
            settings,
            {
                "transactional.id": self.transactional_id,
                "transaction.timeout.ms": open_ms,
                # librdkafka wants a record's delivery timeout within the transaction's.
                "delivery.timeout.ms": open_ms,
            },
        )
        self._transaction = OpenTransaction()
        self._failed = False
        try:
            self._producer.init_transactions(self._timeout_s)
        except KafkaException as exc:
            self._closed = True
            self._server.stop()
            self._producer.close()
            raise Refusal(self.transactional_id).cannot_initialise(exc) from exc
        log.info("transactional producer ready as %r", self.transactional_id)

    def begin(self) -> None:
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            raise Refusal.cannot_begin(exc) from exc
        self._transaction.begin()

    def send(self, record: Outgoing) -> Delivery:
        """As :meth:`ConfluentSink.send`; a send refused because the transaction already
        failed becomes a failed delivery (the batch is aborted, not this record blamed)."""
        try:
            produced = super().send(record)
        except KafkaException as exc:
            error = _error_of(exc)
            if not (error.txn_requires_abort() or error.fatal()):
                raise
            failed: BaseException = exc
        except SinkUnavailable as exc:
            # librdkafka refuses sends with _STATE once the transaction is in an abortable
            # error: abort the batch (the abort fails, and the worker stops, if it is worse).
            cause = exc.__cause__
            if not (isinstance(cause, KafkaException) and _error_of(cause).code() == _STATE):
                raise
            failed = cause
        else:
            return self._transaction.hold(produced)
        held = self._transaction.hold(None, failed)
        self._transaction.sent = True  # librdkafka may hold the transaction open: abort it
        return held

    def send_offsets(
        self, offsets: Mapping[TopicPartition, int], group: object, timeout_s: float
    ) -> None:
        if not isinstance(group, Membership):
            raise TypeError(f"not a confluent consumer's group: {group!r}")
        positions = [KafkaTopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()]
        self._call(
            "adding the offsets to the transaction",
            lambda: self._producer.send_offsets_to_transaction(
                positions, group.metadata, timeout_s
            ),
            timeout_s,
        )

    def commit(self, timeout_s: float) -> None:
        self._call(
            "committing the transaction",
            lambda: self._producer.commit_transaction(timeout_s),
            timeout_s,
        )
        self._transaction.committed()

    def abort(self, timeout_s: float) -> None:
        self._transaction.aborted()
        try:
            self._call(
                "aborting the transaction",
                lambda: self._producer.abort_transaction(timeout_s),
                timeout_s,
            )
        except TransactionAborted as exc:  # an abort that fails is not abortable
            raise TransactionFailed(str(exc)) from exc

    def close(self, timeout_s: float) -> None:
        """Abort the open transaction if anything was sent in it, then close."""
        usable = not self._failed and not self._closed
        close_transaction(self._transaction, self.abort, timeout_s, usable=usable)
        super().close(timeout_s)

    def _call(self, what: str, call: Callable[[], object], timeout_s: float) -> None:
        try:
            call()
        except (KafkaException, SystemError) as exc:
            raised = kafka_exception_of(exc)  # or behind a SystemError: see there
            if raised is None:
                raise
            error = _error_of(raised)
            outcome = transaction_outcome(
                what, error, self.transactional_id, timeout_s, self._timeout_s
            )
            self._failed = isinstance(outcome, TransactionFailed)
            raise outcome from exc
