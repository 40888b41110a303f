"""librdkafka's error codes as the port's outcomes, shared by the confluent source, sink and
transactional sink; and the logger librdkafka's own lines go to."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException

from sentistream.worker.core.ports import CommitDeferred, CommitRefused

__all__ = [
    "MAX_BLOCK_S",
    "KafkaUnreachable",
    "commit_error",
    "commit_outcome",
    "fatal_error_of",
    "kafka_exception_of",
    "log_fatal_or_raise",
]

log = logging.getLogger("sentistream.worker.backends.confluent")

#: How long a send waits for room in librdkafka's queue before the sink is unavailable.
MAX_BLOCK_S = 10.0

_REFUSED = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError._ASSIGNMENT_LOST,
    }
)
_DEFERRED = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._WAIT_COORD,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)


class KafkaUnreachable(Exception):  # noqa: N818
    """No broker answered in time while building a client: retried by the worker. (A
    librdkafka :class:`KafkaException` from a constructor is a configuration error, not
    retried.)"""


def commit_outcome(error: KafkaError) -> Exception | None:
    """The port's outcome for a failed commit: :class:`CommitRefused` (the group moved on),
    :class:`CommitDeferred` (Kafka unreachable for now), or None (not an outcome: raise the
    client's error)."""
    if error.code() in _REFUSED:
        return CommitRefused(error.str())
    if error.code() in _DEFERRED or error.retriable():
        return CommitDeferred(error.str())
    return None


def commit_error(exc: KafkaException) -> Exception:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        outcome = commit_outcome(error)
        if outcome is not None:
            return outcome
    return exc


def kafka_exception_of(exc: BaseException) -> KafkaException | None:
    """``exc`` if it is confluent-kafka's :class:`KafkaException`, or the one behind it.

    confluent-kafka sets the error as the pending exception and may then run a Python callback
    (our ``logger`` receiving librdkafka's FATAL line) before returning; that callback fails
    with it, and Python reports a :class:`SystemError` ("returned a result with an exception
    set") whose cause is the :class:`KafkaException`."""
    if isinstance(exc, SystemError):
        exc = exc.__cause__  # type: ignore[assignment]  # None or the pending exception
    return exc if isinstance(exc, KafkaException) else None


def fatal_error_of(exc: BaseException) -> KafkaError | None:
    """The producer's fatal error that ``exc`` carries (see :func:`kafka_exception_of`)."""
    raised = kafka_exception_of(exc)
    error = raised.args[0] if raised is not None and raised.args else None
    return error if isinstance(error, KafkaError) and error.fatal() else None


#: What Python says when a C function returned failure but the exception it set was lost on
#: the way (librdkafka's FATAL log line, served by the same call, ran our logger in between).
_LOST_EXCEPTION = "returned NULL without setting an exception"


def log_fatal_or_raise(exc: KafkaException | SystemError) -> None:
    """Log a producer's fatal error raised out of a poll or flush and go on (its records
    complete with their own errors); raise anything else. A :class:`SystemError` whose error
    was lost is taken for that fatal error too: it comes only from the same call, after the
    FATAL line, and the transaction's next call fails with the error itself."""
    error = fatal_error_of(exc)
    if error is not None:
        log.error("producer: fatal error: %s", error.str())
        return
    if isinstance(exc, SystemError) and exc.__cause__ is None and _LOST_EXCEPTION in str(exc):
        log.error("producer: a client call failed and its error was lost (%s)", exc)
        return
    raise exc
