"""The contract over both real backends, ``kafka_client("kafka-python")`` and
``kafka_client("confluent")``, on the test broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.contract.backends import RealBackend
from tests.contract.mixins import SinkContract, SourceContract, TransactionalContract

pytestmark = pytest.mark.integration


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
