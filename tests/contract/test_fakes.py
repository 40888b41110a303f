"""The contract over the in-memory fakes (``tests/unit/fakes.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.backends import FakeBackend
from tests.contract.mixins import SinkContract, SourceContract, TransactionalContract


class TestFakes(SourceContract, SinkContract, TransactionalContract):
    @pytest.fixture
    def backend(self) -> Iterator[FakeBackend]:
        backend = FakeBackend()
        yield backend
        backend.close()
