"""kafka-python's transactional producer as the loop's :class:`TransactionalSink`.

kafka-python 3.0's ``commit_transaction``, ``abort_transaction`` and
``send_offsets_to_transaction`` wait without a timeout (``result.wait()``); a broker that went
away mid-commit would hold the loop forever. So this adapter starts each call on the
producer's transaction manager and waits on its result with a deadline, exactly as the public
methods do but bounded (through :mod:`sentistream.worker.backends.kafka_python.internals`;
the integration tests run this against a real broker). A call that does not finish in time
leaves the producer mid-call, so it is a :class:`TransactionFailed`: the worker exits and
its restarted instance, with the same ``transactional.id``, fences this one and aborts what it
left open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import (
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
    TransactionalIdAuthorizationFailedError,
)
from kafka.structs import OffsetAndMetadata

from sentistream.worker.backends.kafka_python import internals
from sentistream.worker.backends.kafka_python.sink import KafkaSink
from sentistream.worker.backends.transactional import OpenTransaction, Refusal, close_transaction
from sentistream.worker.core.ports import (
    Delivery,
    Outgoing,
    TopicPartition,
    TransactionAborted,
    TransactionFailed,
    failure_of,
)
from sentistream.worker.settings import WorkerSettings

__all__ = ["KafkaTransactionalSink"]

log = logging.getLogger(__name__)

_FATAL = (ProducerFencedError, InvalidProducerEpochError, TransactionalIdAuthorizationFailedError)


class KafkaTransactionalSink(KafkaSink):
    def __init__(self, settings: WorkerSettings) -> None:
        self.transactional_id = settings.effective_transactional_id()
        timeout_ms = int(settings.transaction_timeout_s * 1000)
        super().__init__(
            settings,
            transactional_id=self.transactional_id,
            # The broker aborts a transaction left open this long (a worker that died with
            # one open and was not restarted under the same id).
            transaction_timeout_ms=2 * timeout_ms,
            # Bounds init_transactions and a send waiting for metadata or buffer space.
            max_block_ms=timeout_ms,
        )
        self._transaction = OpenTransaction()
        self._refusal = Refusal(self.transactional_id, settings.transaction_timeout_s)
        try:
            self._producer.init_transactions()
        except KafkaError as exc:
            self._producer.close(timeout=0)
            raise self._refusal.cannot_initialise(exc) from exc
        log.info("transactional producer ready as %r", self.transactional_id)

    @property
    def _manager(self) -> Any:
        return internals.transaction_manager(self._producer)

    def begin(self) -> None:
        try:
            self._producer.begin_transaction()
        except KafkaError as exc:
            raise self._refusal.cannot_begin(exc) from exc
        self._transaction.begin()

    def send(self, record: Outgoing) -> Delivery:
        """As :meth:`KafkaSink.send`; a send into a transaction that already failed becomes a
        failed delivery (kafka-python raises a bare ``KafkaError``, which the publisher would
        take for this record's fault)."""
        if self._manager.has_error():
            failure = KafkaError(f"the transaction already failed: {self._manager.last_error}")
            return self._transaction.hold(None, failure)
        return self._transaction.hold(super().send(record))

    def send_offsets(
        self, offsets: Mapping[TopicPartition, int], group: object, timeout_s: float
    ) -> None:
        kafka_offsets = {
            KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "", -1)
            for tp, offset in offsets.items()
        }
        self._wait(
            "adding the offsets to the transaction",
            lambda: self._manager.send_offsets_to_transaction(kafka_offsets, group),
            timeout_s,
        )

    def commit(self, timeout_s: float) -> None:
        self._wait("committing the transaction", self._manager.begin_commit, timeout_s)
        self._transaction.committed()

    def abort(self, timeout_s: float) -> None:
        held = self._transaction.aborted()
        fenced = [f for f in map(failure_of, held) if isinstance(f, _FATAL)]
        if self._manager.has_fatal_error():  # kafka-python would refuse; say why
            raise self._failed("aborting the transaction", self._manager.last_error)
        # A record refused with a stale epoch: another instance initialised this id. kafka-python
        # 3.0.12 takes that for a recoverable error and starts bumping the epoch, a state from
        # which it refuses to abort ("Invalid transition ... BUMPING_PRODUCER_EPOCH").
        if fenced:
            raise self._failed("aborting the transaction", fenced[0])
        try:
            self._wait("aborting the transaction", self._manager.begin_abort, timeout_s)
        except TransactionAborted as exc:  # an abort that fails is not abortable
            raise TransactionFailed(str(exc)) from exc

    def close(self, timeout_s: float) -> None:
        """Abort the open transaction if anything was sent in it, then close."""
        usable = not self._manager.has_fatal_error()
        close_transaction(self._transaction, self.abort, timeout_s, usable=usable)
        super().close(timeout_s)

    def _failed(self, what: str, exc: BaseException | None) -> TransactionFailed:
        cause = exc if isinstance(exc, _FATAL) else self._manager.last_error or exc
        if isinstance(cause, TransactionalIdAuthorizationFailedError):
            return self._refusal.not_authorized(what)
        if isinstance(cause, _FATAL):
            return self._refusal.fenced(what, type(cause).__name__)
        return self._refusal.fatal(what, repr(cause))

    def _wait(self, what: str, start: Callable[[], Any], timeout_s: float) -> None:
        try:
            result = start()
            internals.wake_sender(self._producer)
            finished = result.wait(timeout_ms=max(1, int(timeout_s * 1000)))
        except KafkaError as exc:
            if isinstance(exc, _FATAL) or self._manager.has_fatal_error():
                raise self._failed(what, exc) from exc
            raise TransactionAborted(f"{what}: {exc}") from exc
        if not finished:
            raise self._refusal.timed_out(what, timeout_s)
