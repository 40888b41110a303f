"""The loop's metrics, read from an injected registry after steps with fakes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentistream.worker.core.ports import (
    TopicPartition,
)
from tests.unit.test_worker_loop import (
    CLOCK_TIME,
    EVENT_MS,
    IN,
    TP0,
    TP1,
    make,
    rec,
)

# -- metrics ----------------------------------------------------------------------------------


def test_metrics_after_a_run():
    records = [
        rec(0, "one two", partition=0),
        rec(1, "one two three", partition=0),
        rec(2, "a b c d", partition=0),
        rec(7, "x", partition=1),
        rec(8, "", partition=1),  # empty → dead letter, not labelled
    ]
    h = make(records, batch=5)
    h.source.lags = {TP0: 7, TP1: 0}
    h.worker.step()

    assert h.metric("sentistream_records_consumed_total", topic=IN) == 5
    assert h.metric("sentistream_batch_size_records_count") == 1
    assert h.metric("sentistream_batch_size_records_sum") == 4  # rows given to the classifier
    assert h.metric("sentistream_inference_seconds_count") == 1
    assert h.metric("sentistream_consumer_lag_records", topic=IN, partition="0") == 7
    assert h.metric("sentistream_consumer_lag_records", topic=IN, partition="1") == 0
    assert h.metric("sentistream_assigned_partitions") == 2
    assert h.metric("sentistream_last_progress_timestamp_seconds") == CLOCK_TIME
    assert h.metric("sentistream_records_labeled_total", label="positive") == 0  # not acked

    h.clock.advance(0.5)
    h.sink.ack_all()  # acknowledged 2.5 s after the records' timestamps
    assert h.metric("sentistream_records_labeled_total", label="positive") == 2
    assert h.metric("sentistream_records_labeled_total", label="negative") == 2
    assert h.metric("sentistream_event_to_label_seconds_count") == 4
    assert h.metric("sentistream_event_to_label_seconds_sum") == pytest.approx(4 * 2.5)
    assert h.metric("sentistream_event_to_label_seconds_bucket", le="2.5") == 4
    assert h.metric("sentistream_event_to_label_seconds_bucket", le="1.0") == 0

    h.source.lags = {TP0: 3}  # partition 1 was revoked
    h.source.assigned = {TP0}
    h.worker.step()
    assert h.metric("sentistream_commits_total") == 1
    assert h.source.commits == [{TP0: 3}]  # not the revoked partition's
    assert h.metric("sentistream_commit_failures_total", reason="rebalance") == 1
    assert h.metric("sentistream_consumer_lag_records", topic=IN, partition="0") == 3
    assert (
        h.registry.get_sample_value(
            "sentistream_consumer_lag_records", {"topic": IN, "partition": "1"}
        )
        is None
    )
    assert h.metric("sentistream_assigned_partitions") == 1
    assert h.metric("sentistream_last_progress_timestamp_seconds") == CLOCK_TIME + 0.5


def test_rebalances_are_counted_and_the_topic_partitions_read_after_each() -> None:
    h = make([rec(0, "a")], batch=7)
    assert h.metric("sentistream_max_batch_size_records") == 7
    h.source.partition_count = 3
    h.worker.step()
    assert h.metric("sentistream_rebalances_total") == 0
    assert h.metric("sentistream_input_partitions") == 0  # not read before a rebalance
    h.source.rebalance_count = 2  # two rebalances inside the next poll, partitions unchanged
    h.worker.step()
    assert h.metric("sentistream_rebalances_total") == 2
    assert h.metric("sentistream_input_partitions") == 3
    h.source.partition_count = 6  # partitions added: the group rebalances
    h.worker.step()
    assert h.metric("sentistream_rebalances_total") == 2  # counted once
    assert h.metric("sentistream_input_partitions") == 3
    h.source.rebalance_count = 3
    h.worker.step()
    assert h.metric("sentistream_rebalances_total") == 3
    assert h.metric("sentistream_input_partitions") == 6


def test_lag_in_seconds_is_the_age_of_the_last_record_read_and_grows_while_nothing_is() -> None:
    h = make([rec(0, "a", timestamp=EVENT_MS)], batch=8)
    h.source.lags = {TP0: 5, TP1: 3}
    h.source.assigned = {TP0, TP1}
    h.worker.step()

    def behind(tp: TopicPartition) -> float | None:
        return h.registry.get_sample_value(
            "sentistream_consumer_lag_seconds", {"topic": tp.topic, "partition": str(tp.partition)}
        )

    assert behind(TP0) == pytest.approx(2.0)  # the record read was written 2 s ago
    assert behind(TP1) is None  # nothing read from it yet: unknown, not 0
    h.clock.advance(30.0)  # nothing more is read (a stalled output, a slow model)
    h.worker.step()
    assert behind(TP0) == pytest.approx(32.0)
    h.source.lags = {TP0: 0, TP1: 0}  # caught up
    h.worker.step()
    assert (behind(TP0), behind(TP1)) == (0.0, 0.0)
    h.source.lags = {TP1: 0}  # partition 0 revoked: its series goes, its last record forgotten
    h.source.assigned = {TP1}
    h.worker.step()
    assert behind(TP0) is None
    h.source.lags = {TP0: 4, TP1: 0}  # assigned again, with lag: unknown until it is read
    h.source.assigned = {TP0, TP1}
    h.worker.step()
    assert behind(TP0) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(6)), failed=st.sets(st.integers(0, 5), max_size=2))
def test_each_acknowledged_label_is_counted_once_whatever_order_the_acks_come_in(
    order: list[int], failed: set[int]
):
    # One callback per output partition counts a batch's labels (Kafka acknowledges a
    # partition's records in order); a fake acknowledging in any order must still count each
    # delivered label once, never a failed one, and never before it is acknowledged.
    records = [rec(n, "one two" if n % 2 else "a b c", partition=n % 2) for n in range(6)]
    h = make(records, batch=6)
    h.worker.step()
    acked: set[int] = set()
    for index in order:
        if index in failed:
            h.sink.fail(index)
        else:
            h.sink.ack(index)
            acked.add(index)
        counted = sum(
            h.metric("sentistream_records_labeled_total", label=label)
            for label in ("positive", "negative")
        )
        assert counted <= len(acked)
    counted = sum(
        h.metric("sentistream_records_labeled_total", label=label)
        for label in ("positive", "negative")
    )
    assert counted == len(acked)
    assert h.metric("sentistream_event_to_label_seconds_count") == len(acked)
