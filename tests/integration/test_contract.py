"""The contract (``tests/contract/mixins.py``) over both real backends,
``kafka_client("kafka-python")`` and ``kafka_client("confluent")``, on the test broker (here,
so that they share this folder's broker fixtures; the fakes run it in ``tests/contract``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from sentistream.worker.backends import kafka_client
from sentistream.worker.core.ports import CommitDeferred, TopicPartition
from sentistream.worker.settings import KAFKA_CLIENTS, KafkaClientName, WorkerSettings
from tests.contract.backends import RealBackend
from tests.contract.mixins import SinkContract, SourceContract, TransactionalContract
from tests.integration.conftest import ScriptBroker


class _Real(SourceContract, SinkContract, TransactionalContract):
    client: str

    @pytest.fixture
    def backend(
        self, kafka_bootstrap: str, topic_factory: Callable[..., str]
    ) -> Iterator[RealBackend]:
        backend = RealBackend(self.client, kafka_bootstrap, topic_factory)  # type: ignore[arg-type]
        yield backend
        backend.close()


class TestKafkaPython(_Real):
    client = "kafka-python"


class TestConfluent(_Real):
    client = "confluent"


@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_a_commit_while_kafka_is_unreachable_is_deferred(
    client: KafkaClientName, own_broker: ScriptBroker
) -> None:
    """What the fakes' ``unavailable_commits`` stands for: the broker gone, a commit within
    its timeout raises :class:`CommitDeferred` (retried at the next interval), not an error."""
    from kafka import KafkaAdminClient

    topic = f"contract-outage-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=own_broker.bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
        admin.wait_for_topics([topic], timeout_ms=30_000)
    finally:
        admin.close()
    settings = WorkerSettings(
        bootstrap_servers=own_broker.bootstrap,
        input_topic=topic,
        group_id=f"contract-{uuid.uuid4().hex[:8]}",
        kafka_client=client,
    )
    source = kafka_client(client).source(settings)
    try:
        source.subscribe()
        deadline = time.monotonic() + 60
        while not source.assignment():
            assert time.monotonic() < deadline, "never assigned"
            source.poll(0.5, 1)
        assert own_broker.run("stop").returncode == 0
        started = time.monotonic()
        with pytest.raises(CommitDeferred):
            source.commit({TopicPartition(topic, 0): 1}, 2.0)
        assert time.monotonic() - started < 10
    finally:
        source.close(0.5)
