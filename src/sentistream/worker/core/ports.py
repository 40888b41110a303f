"""The worker's ports: what the loop needs of Kafka, the model and time, and the outcomes.

Adapters (the Kafka backends, the ONNX classifier in ``app``) and the test fakes implement these
Protocols; the loop and its stages import only this module, never a Kafka client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from sentistream.worker.core.messages import InputRecord

__all__ = [
    "CannotConnect",
    "Classifier",
    "Clock",
    "CommitDeferred",
    "CommitRefused",
    "DeadLetterFailed",
    "Delivered",
    "Delivery",
    "DeliveryFailed",
    "InferenceError",
    "ModelBroken",
    "Outgoing",
    "Sink",
    "SinkUnavailable",
    "Source",
    "SystemClock",
    "TopicPartition",
    "TransactionAborted",
    "TransactionFailed",
    "TransactionalSink",
    "TransactionalSource",
    "failure_of",
    "when_delivered",
]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def time(self) -> float: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class Delivered(NamedTuple):
    """Where Kafka stored a produced record."""

    partition: int
    offset: int


class Delivery(Protocol):
    """A produced record's acknowledgement: its result is where the record was stored (None
    when the sink cannot say), its exception the client's error once the producer gave up on
    the record. It completes on whichever thread the client reports on (kafka-python's IO
    thread, librdkafka's delivery reports), and so do the callbacks added to it; the loop only
    asks it without waiting (:func:`failure_of`). A standard
    :class:`~concurrent.futures.Future` is one; a backend may give a lighter object over its
    client's own handle (kafka-python's: one object and no second lock per record)."""

    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def exception(self) -> BaseException | None:
        """Why it failed; None once it succeeded. Asked only once :meth:`done`."""

    def result(self) -> Delivered | None:
        """Where the record was stored. Asked only once :meth:`done` without a failure."""

    def add_done_callback(self, fn: Callable[[Delivery], object]) -> None:
        """Call ``fn(self)`` once done, at once (on this thread) if it is already."""


def when_delivered(delivery: Delivery, fn: Callable[..., object], *args: object) -> None:
    """Call ``fn(*args, result)`` once ``delivery`` succeeds (at once if it has); never
    when it fails."""

    def done(future: Delivery) -> None:
        if not future.cancelled() and future.exception() is None:
            fn(*args, future.result())

    delivery.add_done_callback(done)


def failure_of(delivery: Delivery) -> BaseException | None:
    """Why ``delivery`` failed; None while it is pending or once it succeeded. Never waits."""
    if not delivery.done():
        return None
    if delivery.cancelled():
        return DeliveryFailed("the delivery was cancelled")
    return delivery.exception()


# -- outcomes -------------------------------------------------------------------------------


class CannotConnect(Exception):  # noqa: N818
    """Kafka answers but refuses us (credentials, certificates): retrying will not help."""


class CommitRefused(Exception):  # noqa: N818 - it is an outcome, not a bug
    """The group moved on (rebalance); the offsets were not committed."""


class CommitDeferred(Exception):  # noqa: N818
    """Kafka could not take the commit now (broker or coordinator unreachable); retry later."""


class InferenceError(Exception):
    """The classifier failed on the records it was given."""


class ModelBroken(Exception):  # noqa: N818
    """Every record of a batch failed inference on its own: the model, not the data, is bad."""


class DeliveryFailed(Exception):  # noqa: N818
    """Kafka did not acknowledge a produced record after the producer's retries."""


class SinkUnavailable(Exception):  # noqa: N818
    """The sink cannot take any record now (metadata timeout, producer closed): a failure of
    the service, never of the record being sent."""


class SourceFailed(Exception):  # noqa: N818
    """Kafka refused the consumer for good: not authorized to read the topic or use the
    group, or the client in a state it cannot leave. Retrying cannot help; the worker exits
    with the reason (nothing uncommitted is lost: a restart reads it again)."""

    @classmethod
    def not_authorized_for_group(cls, group: str, detail: str) -> SourceFailed:
        return cls(
            f"consumer: not authorized to use consumer group {group!r} (grant the worker's "
            f"principal Read on the group): {detail}"
        )

    @classmethod
    def not_authorized_for_topic(cls, topic: str, detail: str) -> SourceFailed:
        return cls(
            f"consumer: not authorized to read topic {topic!r} (grant the worker's principal "
            f"Read and Describe on it): {detail}"
        )


class DeadLetterFailed(Exception):  # noqa: N818
    """Even a bare dead letter (no original key, value or headers) was refused."""


class TransactionAborted(Exception):  # noqa: N818
    """The open transaction cannot commit but can be aborted (a record refused, the group
    rebalanced under the batch, the offsets' generation is stale): abort it, rewind to the
    last committed offsets, go on."""


class TransactionFailed(Exception):  # noqa: N818
    """The transactional producer cannot go on: fenced by a newer instance with the same
    transactional.id, in a fatal state, or a call that did not finish in time. The worker
    exits; the broker aborts what was open when the next instance starts."""


# -- ports ----------------------------------------------------------------------------------


class Source(Protocol):
    def poll(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[InputRecord]]:
        """Up to ``max_records`` records (at least 1 asked), in offset order per partition,
        none from a paused partition; waits at most ``timeout_s`` when none is there. The
        group's rebalances run inside it."""

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_s: float
    ) -> set[TopicPartition]:
        """Commit ``offsets`` (next offset to read) of the partitions still owned, waiting at
        most ``timeout_s``.

        Returns the partitions left out because they are no longer assigned. Raises
        :class:`CommitRefused` when a rebalance moved the partitions away during the commit,
        and :class:`CommitDeferred` when Kafka is unreachable for now.
        """

    def assignment(self) -> set[TopicPartition]: ...
    def rebalances(self) -> int:
        """Rebalances this consumer has taken part in since it started (each assignment the
        group handed it, even one that left its partitions as they were)."""

    def input_partitions(self) -> int | None:
        """Partitions the input topic has, from the cluster's metadata (None if unknown).
        Asked after each rebalance (partitions added to the topic cause one)."""

    def lag(self) -> Mapping[TopicPartition, int]:
        """High watermark minus position, per assigned partition whose both are known."""

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        """Stop fetching from ``partitions`` (``poll`` keeps the group membership alive)."""

    def resume(self, partitions: Collection[TopicPartition]) -> None: ...
    def close(self) -> None: ...


class Outgoing(NamedTuple):
    """A record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    partition: int | None = None
    """None: the client's partitioner chooses, by key."""


class Sink(Protocol):
    def send(self, record: Outgoing) -> Delivery:
        """Produce ``record`` asynchronously (to its partition, or by key).

        Refuses a record, synchronously and before any delivery exists, with ``ValueError``
        when it has neither key nor value, ``TypeError`` when a header is not a
        ``(str, bytes)`` pair, and the client's own error when it is over the producer's
        request size (kafka-python's ``MessageSizeTooLargeError``, librdkafka's
        ``KafkaException``) or otherwise unsendable: each the record's fault, never
        :class:`SinkUnavailable`, which it raises when it cannot take any record now.
        """

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has, from the producer's metadata (waiting for it
        if need be). Raises :class:`SinkUnavailable` when the metadata cannot be had."""

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every send to complete; False if time ran out."""


class Classifier(Protocol):
    labels: tuple[str, ...]

    def encode(self, text: str) -> list[int]: ...
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of every text in one call (what the worker calls per batch)."""

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        """Probabilities per row; raises :class:`InferenceError` on failure."""


class TransactionalSource(Source, Protocol):
    """A :class:`Source` read for exactly-once: what group membership the records came from,
    and going back to the last committed offsets after an abort."""

    def batch_group(self) -> object | None:
        """The group membership (opaque; kafka-python's ``ConsumerGroupMetadata``) under which
        every record polled since the previous call was fetched, or None if the group
        rebalanced among those polls. Resets the tracking."""

    def still_current(self, group: object) -> bool:
        """False once the group has rebalanced since ``group`` was taken."""

    def rewind(self, timeout_s: float) -> None:
        """Seek every assigned partition to its committed offset (the start when none).

        Raises :class:`TransactionFailed` when the committed offsets cannot be read in time.
        """


class TransactionalSink(Sink, Protocol):
    """A :class:`Sink` whose sends go into a transaction: nothing is visible to
    ``read_committed`` readers until :meth:`commit`. A delivery's callbacks run when its
    transaction commits, never for an aborted one. Every call waits at most ``timeout_s`` and
    raises :class:`TransactionAborted` (abort and go on) or :class:`TransactionFailed`
    (stop)."""

    def begin(self) -> None: ...
    def send_offsets(
        self, offsets: Mapping[TopicPartition, int], group: object, timeout_s: float
    ) -> None:
        """Add the consumer's ``offsets`` (next offsets to read) to the transaction."""

    def commit(self, timeout_s: float) -> None: ...
    def abort(self, timeout_s: float) -> None: ...
