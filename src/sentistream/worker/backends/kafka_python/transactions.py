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
from collections.abc import Callable, Mapping, Sequence
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
from sentistream.worker.core.exactly_once import HeldDelivery
from sentistream.worker.core.ports import (
    Delivery,
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
        self._held: list[HeldDelivery] = []
        self._sent = False
        try:
            self._producer.init_transactions()
        except KafkaError as exc:
            self._producer.close(timeout=0)
            raise TransactionFailed(
                f"cannot initialise transactions as {self.transactional_id!r}: {exc}"
            ) from exc
        log.info("transactional producer ready as %r", self.transactional_id)

    @property
    def _manager(self) -> Any:
        return internals.transaction_manager(self._producer)

    def begin(self) -> None:
        try:
            self._producer.begin_transaction()
        except KafkaError as exc:
            raise TransactionFailed(f"cannot begin a transaction: {exc}") from exc
        self._held, self._sent = [], False

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None,
    ) -> Delivery:
        """As :meth:`KafkaSink.send`; a send into a transaction that already failed becomes a
        failed delivery (kafka-python raises a bare ``KafkaError``, which the publisher would
        take for this record's fault)."""
        if self._manager.has_error():
            failure = KafkaError(f"the transaction already failed: {self._manager.last_error}")
            held = HeldDelivery(None, failure)
        else:
            held = HeldDelivery(super().send(topic, key, value, headers, partition))
            self._sent = True
        self._held.append(held)
        return held

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
        held, self._held = self._held, []
        for delivery in held:
            delivery.release()

    def abort(self, timeout_s: float) -> None:
        held, self._held = self._held, []
        fenced = [f for f in map(failure_of, held) if isinstance(f, _FATAL)]
        for delivery in held:
            delivery.discard()
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
        if self._sent and not self._manager.has_fatal_error():
            try:
                self.abort(min(timeout_s, 5.0))
            except TransactionFailed as exc:
                log.info("open transaction left to the broker to abort: %s", exc)
        super().close(timeout_s)

    def _failed(self, what: str, exc: BaseException | None) -> TransactionFailed:
        cause = exc if isinstance(exc, _FATAL) else self._manager.last_error or exc
        if isinstance(cause, TransactionalIdAuthorizationFailedError):
            return TransactionFailed(
                f"{what}: not authorized to use transactional id {self.transactional_id!r} "
                "(the principal needs Write on that TransactionalId)"
            )
        if isinstance(cause, _FATAL):
            return TransactionFailed(
                f"{what}: fenced: another worker took over transactional id "
                f"{self.transactional_id!r} ({type(cause).__name__})"
            )
        return TransactionFailed(f"{what}: the producer is in a fatal state ({cause!r})")

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
            raise TransactionFailed(f"{what} did not finish within {timeout_s:.1f} s")
