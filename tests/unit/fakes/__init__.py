"""In-memory fakes for the worker loop's ports: no broker, no model, no sleeping.

Each fake records what the loop asked of it, so tests assert on calls (poll timeouts, sends,
commits, classifier batches) rather than on timing. The fakes fail where the real clients
fail: :class:`FakeSink` refuses, synchronously and with the same exception types, what
kafka-python's producer refuses (a null header value, a record with neither key nor value, a
record over ``max_request_size`` by kafka-python's own size estimate); :class:`FakeSource`
returns nothing from paused partitions and does not commit partitions it no longer owns; and
:class:`FakeTransactionalSink` can fail at each step of a transaction (begin, send, send
offsets, commit, abort) the way kafka-python's transactional producer does, with a
:class:`FakeTransactionLog` holding only what committed transactions made visible.
"""

from tests.unit.fakes.model import FakeClassifier, FakeClock, ManualRunner
from tests.unit.fakes.sink import DEFAULT_PARTITIONS, FakeDelivery, FakeSink, Sent
from tests.unit.fakes.source import FakeRecord, FakeSource
from tests.unit.fakes.transactions import (
    FakeTransactionalSink,
    FakeTransactionalSource,
    FakeTransactionLog,
)

__all__ = [
    "DEFAULT_PARTITIONS",
    "FakeClassifier",
    "FakeClock",
    "FakeDelivery",
    "FakeRecord",
    "FakeSink",
    "FakeSource",
    "FakeTransactionLog",
    "FakeTransactionalSink",
    "FakeTransactionalSource",
    "ManualRunner",
    "Sent",
]
