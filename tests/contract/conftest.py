"""The contract suite runs the real backends on the integration tests' broker: their
fixtures, re-used (a session starts the broker only if a real backend's test is selected)."""

from tests.integration.conftest import (  # noqa: F401 - fixtures
    kafka_admin,
    kafka_bootstrap,
    kafka_script_broker,
    topic_factory,
)
