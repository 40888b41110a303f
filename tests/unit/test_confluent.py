"""The confluent-kafka adapters' pure parts: settings → librdkafka keys, librdkafka errors →
the ports' outcomes, the Delivery object, and what the real producer refuses synchronously
(no broker: a producer only connects when it has to deliver)."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from sentistream.connection import KafkaConnection
from sentistream.worker.backends import ClientMissing, kafka_client
from sentistream.worker.backends.confluent.config import librdkafka_config
from sentistream.worker.backends.confluent.delivery import ServedDelivery
from sentistream.worker.backends.confluent.errors import (
    KafkaUnreachable,
    commit_outcome,
    fatal_error_of,
    kafka_exception_of,
)
from sentistream.worker.backends.confluent.sink import ConfluentSink
from sentistream.worker.backends.confluent.source import ConfluentSource
from sentistream.worker.backends.confluent.transactions import (
    ConfluentTransactionalSink,
    transaction_outcome,
)
from sentistream.worker.backends.tuning import ConsumerTuning, consumer_tuning
from sentistream.worker.core.ports import (
    CommitDeferred,
    CommitRefused,
    Delivered,
    Outgoing,
    SinkUnavailable,
    TransactionAborted,
    TransactionFailed,
    failure_of,
    when_delivered,
)
from sentistream.worker.settings import WorkerSettings

# -- connection settings → librdkafka ----------------------------------------------------------


def test_plaintext_maps_servers_protocol_and_backoff() -> None:
    config = librdkafka_config(KafkaConnection(bootstrap_servers="a:9092, b:9093").client_config())
    assert config == {
        "bootstrap.servers": "a:9092,b:9093",
        "security.protocol": "plaintext",
        "reconnect.backoff.max.ms": 1_000,
    }


def test_sasl_ssl_with_scram_maps_user_password_and_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    connection = KafkaConnection(
        bootstrap_servers="k:9094",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="alice",
        sasl_password="s3cret",
        ssl_cafile=ca,
    )
    config = librdkafka_config(connection.client_config())
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "SCRAM-SHA-256"
    assert config["sasl.username"] == "alice"
    assert config["sasl.password"] == "s3cret"
    assert config["ssl.ca.location"] == str(ca)
    assert config["ssl.endpoint.identification.algorithm"] == "https"


def test_mtls_maps_certificate_and_key_and_hostname_check_off(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("x")
    connection = KafkaConnection(
        security_protocol="SSL",
        ssl_cafile=files["ca"],
        ssl_certfile=files["cert"],
        ssl_keyfile=files["key"],
        ssl_check_hostname=False,
    )
    config = librdkafka_config(connection.client_config())
    assert config["ssl.certificate.location"] == str(files["cert"])
    assert config["ssl.key.location"] == str(files["key"])
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    assert not any(key.startswith("sasl.") for key in config)


def test_a_client_setting_without_a_librdkafka_name_is_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="api_version"):
        librdkafka_config({"bootstrap_servers": ["a:1"], "api_version": (3, 0)})


def test_the_mapped_settings_are_accepted_by_librdkafka(tmp_path: Path) -> None:
    """librdkafka refuses an unknown property or value when the client is built."""
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    config = librdkafka_config(
        KafkaConnection(
            security_protocol="SASL_PLAINTEXT",
            sasl_username="u",
            sasl_password="p",
        ).client_config()
    )
    from confluent_kafka import Producer

    Producer(config).close()


# -- librdkafka errors → outcomes -------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError._ASSIGNMENT_LOST,
    ],
)
def test_a_commit_the_group_moved_away_from_is_refused(code: int) -> None:
    assert isinstance(commit_outcome(KafkaError(code)), CommitRefused)


@pytest.mark.parametrize(
    "error",
    [
        KafkaError(KafkaError._TRANSPORT),
        KafkaError(KafkaError._TIMED_OUT),
        KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE),
        KafkaError(KafkaError.NOT_COORDINATOR),
        KafkaError(KafkaError.UNKNOWN, retriable=True),
    ],
)
def test_a_commit_kafka_cannot_take_now_is_deferred(error: KafkaError) -> None:
    assert isinstance(commit_outcome(error), CommitDeferred)


def test_another_commit_error_is_no_outcome() -> None:
    assert commit_outcome(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)) is None


def test_an_abortable_transaction_error_aborts() -> None:
    error = KafkaError(KafkaError.ILLEGAL_GENERATION, "stale", txn_requires_abort=True)
    outcome = transaction_outcome("adding the offsets", error, "tid", 30.0)
    assert isinstance(outcome, TransactionAborted)
    assert "adding the offsets" in str(outcome)


def test_a_fenced_producer_fails_and_says_fenced() -> None:
    error = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    outcome = transaction_outcome("committing", error, "worker-0", 30.0)
    assert isinstance(outcome, TransactionFailed)
    assert "fenced" in str(outcome)
    assert "'worker-0'" in str(outcome)


def _raised_with_an_exception_set(pending: BaseException) -> SystemError:
    """What CPython raises when a C call (confluent-kafka's flush) returns while ``pending``
    is still set: a SystemError caused by it."""
    system_error = SystemError("<method __enter__> returned a result with an exception set")
    system_error.__cause__ = pending
    return system_error


def test_a_fatal_error_is_found_raised_plainly_or_behind_a_system_error() -> None:
    fenced = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)
    assert fatal_error_of(KafkaException(fenced)) is fenced
    assert fatal_error_of(_raised_with_an_exception_set(KafkaException(fenced))) is fenced


def test_a_kafka_exception_is_found_behind_a_system_error_and_nothing_else_is() -> None:
    raised = KafkaException(KafkaError(KafkaError._STATE, "abortable"))
    assert kafka_exception_of(raised) is raised
    assert kafka_exception_of(_raised_with_an_exception_set(raised)) is raised
    assert kafka_exception_of(_raised_with_an_exception_set(ValueError("a bug"))) is None
    assert kafka_exception_of(SystemError("no cause")) is None


def test_other_errors_are_not_taken_for_a_fatal_one() -> None:
    transient = KafkaError(KafkaError._TRANSPORT, "broker down")
    assert fatal_error_of(KafkaException(transient)) is None
    assert fatal_error_of(_raised_with_an_exception_set(ValueError("a bug"))) is None
    assert fatal_error_of(SystemError("no cause")) is None


class _PollRaising:
    """In place of confluent-kafka's Producer: ``poll`` and ``flush`` raise ``error`` once (as
    the real one raises a fatal error once, plainly or as a SystemError caused by it), then
    behave (nothing pending)."""

    def __init__(self, error: BaseException) -> None:
        self.error: BaseException | None = error

    def _once(self) -> None:
        error, self.error = self.error, None
        if error is not None:
            raise error

    def poll(self, timeout: float = 0) -> int:
        self._once()
        return 0

    def flush(self, timeout: float = 0) -> int:
        self._once()
        return 0


@pytest.mark.parametrize("as_system_error", [False, True], ids=["plain", "system_error"])
def test_the_sink_logs_a_fatal_error_raised_from_poll_or_flush_and_goes_on(
    as_system_error: bool, caplog: pytest.LogCaptureFixture
) -> None:
    fenced = KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    raised = _raised_with_an_exception_set(fenced) if as_system_error else fenced
    sink = ConfluentSink(unreachable())
    sink._server.stop()  # the test polls alone
    real = sink._producer
    try:
        sink._producer = _PollRaising(raised)  # type: ignore[assignment]
        sink.serve(0)  # does not raise
        sink._producer = _PollRaising(raised)  # type: ignore[assignment]
        assert sink.flush(1) is True  # flushes what is left after logging it
        assert caplog.text.count("producer: fatal error: fenced") == 2
        transient = KafkaException(KafkaError(KafkaError._TRANSPORT, "not fatal"))
        sink._producer = _PollRaising(transient)  # type: ignore[assignment]
        with pytest.raises(KafkaException):
            sink.serve(0)  # anything else still surfaces
    finally:
        sink._producer = real
        sink.close(0)


def test_a_system_error_whose_exception_was_lost_is_logged_and_the_sink_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seen from flush() in the fenced-sink integration test: librdkafka's FATAL line ran our
    logger inside the call and the pending exception was lost on the way back."""
    lost = SystemError(
        "<method 'flush' of 'cimpl.Producer' objects> returned NULL without setting an exception"
    )
    sink = ConfluentSink(unreachable())
    sink._server.stop()
    real = sink._producer
    try:
        sink._producer = _PollRaising(lost)  # type: ignore[assignment]
        assert sink.flush(1) is True
        assert "its error was lost" in caplog.text
        other = SystemError("something else went wrong")
        sink._producer = _PollRaising(other)  # type: ignore[assignment]
        with pytest.raises(SystemError, match="something else"):
            sink.serve(0)
    finally:
        sink._producer = real
        sink.close(0)


def test_a_transactional_id_the_principal_may_not_use_fails_naming_the_acl() -> None:
    error = KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "denied")
    outcome = transaction_outcome("initialising", error, "worker-0", 30.0)
    assert isinstance(outcome, TransactionFailed)
    assert "not authorized to use transactional id 'worker-0'" in str(outcome)
    assert "fenced" not in str(outcome)


def test_a_fatal_error_fails() -> None:
    error = KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, "broken", fatal=True)
    assert isinstance(transaction_outcome("x", error, "t", 1.0), TransactionFailed)


def test_a_call_that_timed_out_fails_naming_the_timeout() -> None:
    error = KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True)
    outcome = transaction_outcome("committing the transaction", error, "t", 7.0)
    assert isinstance(outcome, TransactionFailed)
    assert "7.0 s" in str(outcome)


def test_an_error_that_is_neither_abortable_nor_retriable_fails() -> None:
    error = KafkaError(KafkaError._STATE, "wrong state")
    assert isinstance(transaction_outcome("x", error, "t", 1.0), TransactionFailed)


# -- the Delivery object ------------------------------------------------------------------------


class Serves:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return 0


def test_a_pending_delivery_serves_the_producer_when_asked_and_is_not_done() -> None:
    serve = Serves()
    delivery = ServedDelivery(serve)
    assert not delivery.done()
    assert failure_of(delivery) is None
    assert serve.calls == 2


class _Message:
    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41


def test_an_acknowledged_delivery_succeeds_with_where_the_record_is_and_runs_callbacks_once():
    serve = Serves()
    delivery = ServedDelivery(serve)
    seen: list[tuple[object, ...]] = []
    when_delivered(delivery, lambda *a: seen.append(a), "positive", 123)
    delivery.report(None, _Message())  # type: ignore[arg-type]
    assert seen == [("positive", 123, Delivered(2, 41))]
    assert delivery.done()
    assert delivery.result() == Delivered(2, 41)
    assert serve.calls == 0  # done: nothing to serve
    when_delivered(delivery, lambda *a: seen.append(a), "late")  # already done: runs at once
    assert seen[-1] == ("late", Delivered(2, 41))


def test_a_delivery_asked_from_inside_another_ones_report_does_not_poll_the_producer_again():
    # The publisher asks a partition's earlier deliveries from the callback of its last one;
    # a poll from inside librdkafka's poll aborts the process (confluent-kafka's call state).
    serve = Serves()
    first, last = ServedDelivery(serve), ServedDelivery(serve)
    asked: list[bool] = []
    last.add_done_callback(lambda _: asked.append(first.done()))
    last.report(None, _Message())  # type: ignore[arg-type]
    assert asked == [False]
    assert serve.calls == 0
    assert not first.done()  # outside a report it serves again
    assert serve.calls == 1


def test_a_failed_delivery_keeps_the_error_and_runs_no_callback() -> None:
    delivery = ServedDelivery(Serves())
    seen: list[object] = []
    when_delivered(delivery, seen.append)
    delivery.report(KafkaError(KafkaError._MSG_TIMED_OUT, "gave up"), None)
    failure = failure_of(delivery)
    assert isinstance(failure, KafkaException)
    assert failure.args[0].code() == KafkaError._MSG_TIMED_OUT
    when_delivered(delivery, seen.append)
    assert seen == []


def test_a_callback_that_raises_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivery = ServedDelivery(Serves())
    seen: list[object] = []

    def broken(*_: object) -> None:
        raise RuntimeError("metric broke")

    when_delivered(delivery, broken)
    when_delivered(delivery, seen.append)
    with caplog.at_level(logging.ERROR):
        delivery.report(None, None)
    assert seen == [None]
    assert "metric broke" in caplog.text


# -- the real producer, no broker ----------------------------------------------------------------


def unreachable(**overrides: str) -> WorkerSettings:
    return WorkerSettings(bootstrap_servers="127.0.0.1:1", **overrides)  # type: ignore[arg-type]


def test_a_record_over_the_size_limit_is_refused_by_send_as_the_records_fault() -> None:
    sink = ConfluentSink(unreachable())
    try:
        with pytest.raises(KafkaException) as refused:
            sink.send(Outgoing("t", b"k", b"x" * 2_000_000))
        assert refused.value.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
        assert not isinstance(refused.value, SinkUnavailable)
    finally:
        sink.close(0)


def test_a_full_queue_makes_the_sink_unavailable_after_max_block() -> None:
    sink = ConfluentSink(unreachable(), {"queue.buffering.max.messages": 1}, max_block_s=0.05)
    try:
        delivery = sink.send(Outgoing("t", b"k", b"v", [("h", b"1")]))
        with pytest.raises(SinkUnavailable, match="queue stayed full"):
            sink.send(Outgoing("t", b"k", b"v"))
        assert not delivery.done()
        assert not sink.flush(0.01)
    finally:
        sink.close(0)


def test_a_closed_sink_takes_nothing() -> None:
    sink = ConfluentSink(unreachable())
    sink.close(0)
    with pytest.raises(SinkUnavailable):
        sink.send(Outgoing("t", None, b"v"))


def _quick_bootstrap(settings: WorkerSettings) -> ConsumerTuning:
    return dataclasses.replace(consumer_tuning(settings), bootstrap_timeout_s=0.2)


def test_a_consumer_with_no_broker_to_reach_is_retried_not_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "sentistream.worker.backends.confluent.source.consumer_tuning", _quick_bootstrap
    )
    with pytest.raises(KafkaUnreachable):
        ConfluentSource(unreachable())


# librdkafka's close warns that it could not abort the init it gave up on: expected here.
@pytest.mark.filterwarnings("ignore:Producer abort_transaction failed:RuntimeWarning")
def test_transactions_that_cannot_initialise_fail() -> None:
    with pytest.raises(TransactionFailed, match="cannot initialise transactions as 'w-1'"):
        ConfluentTransactionalSink(unreachable(transactional_id="w-1", transaction_timeout_s="0.2"))


# -- choosing the client ------------------------------------------------------------------------


def test_the_confluent_client_is_the_confluent_adapters() -> None:
    client = kafka_client("confluent")
    assert client.source is ConfluentSource
    assert client.sink is ConfluentSink
    assert client.transactional_sink is ConfluentTransactionalSink
    assert client.transient == (KafkaUnreachable,)


def test_the_default_client_is_kafka_python() -> None:
    from sentistream.worker.backends.kafka_python.source import connect_source

    assert WorkerSettings().kafka_client == "kafka-python"
    assert kafka_client("kafka-python").source is connect_source


def test_a_missing_confluent_kafka_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    with pytest.raises(ClientMissing, match=r"pip install 'sentistream\[confluent\]'"):
        kafka_client("confluent")


def test_the_worker_without_confluent_kafka_stops_in_one_line_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sentistream.worker.app.main import EXIT_SETUP, run_worker

    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    caplog.set_level(logging.INFO, "sentistream")
    assert run_worker(WorkerSettings(kafka_client="confluent", metrics_port=0)) == EXIT_SETUP
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "--kafka-client confluent needs confluent-kafka: pip install 'sentistream[confluent]'"
    ]


def test_the_worker_imports_confluent_kafka_only_when_asked_for() -> None:
    import subprocess

    code = (
        "import sys, sentistream.worker.app.main, sentistream.cli\n"
        "print('confluent_kafka' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
