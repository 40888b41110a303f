"""Every record a relabel writes (labels and dead letters) carries a header naming its run,
``sentistream.relabel: <group id>``, beside the input's own headers that the worker copies:
the value stays the worker's format, and a consumer that reads relabels and originals
together (or the dead-letter topic the live workers share) can tell them apart."""

from __future__ import annotations

from collections.abc import Mapping

from sentistream.worker.backends import WorkerSink, WorkerTransactionalSink
from sentistream.worker.core.ports import Delivery, Outgoing, TopicPartition

__all__ = ["RELABEL_HEADER", "MarkedSink", "MarkedTransactionalSink"]

RELABEL_HEADER = "sentistream.relabel"


class MarkedSink:
    def __init__(self, inner: WorkerSink, run_id: str) -> None:
        self.inner = inner
        self.mark = (RELABEL_HEADER, run_id.encode())

    def send(self, record: Outgoing) -> Delivery:
        return self.inner.send(record._replace(headers=[*record.headers, self.mark]))

    def partitions(self, topic: str) -> int:
        return self.inner.partitions(topic)

    def flush(self, timeout_s: float) -> bool:
        return self.inner.flush(timeout_s)

    def close(self, timeout_s: float) -> None:
        self.inner.close(timeout_s)


class MarkedTransactionalSink(MarkedSink):
    def __init__(self, inner: WorkerTransactionalSink, run_id: str) -> None:
        super().__init__(inner, run_id)
        self.transactional = inner

    def begin(self) -> None:
        self.transactional.begin()

    def send_offsets(
        self, offsets: Mapping[TopicPartition, int], group: object, timeout_s: float
    ) -> None:
        self.transactional.send_offsets(offsets, group, timeout_s)

    def commit(self, timeout_s: float) -> None:
        self.transactional.commit(timeout_s)

    def abort(self, timeout_s: float) -> None:
        self.transactional.abort(timeout_s)
