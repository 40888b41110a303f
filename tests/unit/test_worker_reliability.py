"""No record can stop the worker: each one ends as exactly one label or one dead letter.

Driven through ``Worker.step`` with the fakes, whose sink refuses what kafka-python's producer
refuses (null header values, neither key nor value, over ``max_request_size``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder

from sentistream.worker.core.messages import InputFormat, UnreadableRecord
from sentistream.worker.core.metrics import COMMIT_FAILURE_REASONS, DEAD_LETTER_REASONS
from sentistream.worker.core.ports import DeadLetterFailed, SinkUnavailable, TopicPartition
from tests.unit.fakes import FakeClassifier, FakeRecord, FakeSink, Sent
from tests.unit.test_worker_loop import DLQ, IN, OUT, TP0, Harness, make, rec

GOOD = '{"text": "what a lovely day", "id": "good"}'


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def run_all(h: Harness, steps: int = 10) -> None:
    for _ in range(steps):
        h.worker.step()
        h.sink.ack_all()
        h.clock.advance(0.5)
    h.worker.step()


def outcome_per_offset(h: Harness) -> Counter[tuple[int, int]]:
    """(partition, offset) → how many outputs (labels plus dead letters) it produced."""
    seen: Counter[tuple[int, int]] = Counter()
    for sent in h.sink.sent:
        if sent.topic == OUT:
            source = json.loads(sent.value or b"")["source"]
            seen[(source["partition"], source["offset"])] += 1
        else:
            headers = dict(sent.headers)
            seen[
                (
                    int(headers["__connect.errors.partition"]),
                    int(headers["__connect.errors.offset"]),
                )
            ] += 1
    return seen


# -- the known cases, each between two good records --------------------------------------------

HOSTILE = [
    pytest.param(
        ('{"text": "fine words", "id": ' + _nested(1_100) + "}").encode(),
        "invalid_json",
        id="nested_1100_deep_in_id",
    ),
    pytest.param(
        ('{"text": "fine", "more": {"a": ' + _nested(5_000) + "}}").encode(),
        "invalid_json",
        id="nested_5000_deep_in_another_field",
    ),
    pytest.param(
        ('{"text": "fine", "id": ' + "7" * 5_000 + "}").encode(), "invalid_json", id="huge_int"
    ),
    pytest.param(b'{"text": "fine", "id": NaN}', "invalid_json", id="nan"),
    pytest.param(b'{"text": "fine", "id": Infinity}', "invalid_json", id="infinity"),
    pytest.param(b'{"text": "fine", "id": 1e400}', "invalid_json", id="1e400"),
    pytest.param(b'{"text": "fine \\ud800"}', "invalid_json", id="lone_surrogate_text"),
    pytest.param(b'{"text": "fine", "id": "\\udc00"}', "invalid_json", id="lone_surrogate_id"),
]


@pytest.mark.parametrize(("value", "reason"), HOSTILE)
def test_a_hostile_value_is_one_dead_letter_and_the_neighbours_are_labelled(
    value: bytes, reason: str
):
    records = [rec(0, GOOD), rec(1, value, key=b"k"), rec(2, GOOD)]
    h = make(records, batch=3, max_record_bytes=100_000)
    run_all(h)

    assert [s.topic for s in h.sink.sent] == [OUT, DLQ, OUT]
    dead = h.sink.to(DLQ)[0]
    assert dead.value == value
    assert dead.header("sentistream.errors.reason") == reason.encode()
    for sent in h.sink.to(OUT):
        json.loads(sent.value or b"", parse_constant=pytest.fail)  # strict JSON out
    assert h.source.committed() == {TP0: 3}


def test_a_record_the_client_could_not_read_is_one_dead_letter_naming_its_offset():
    """What the Kafka adapters hand over in place of a record they cannot parse (a header key
    that is not UTF-8): counted, dead-lettered with where it is, committed past."""
    unreadable = UnreadableRecord(IN, 0, 1, "CorruptRecordError: header key is not UTF-8")
    h = make([rec(0, GOOD), unreadable, rec(2, GOOD)], batch=3)  # type: ignore[list-item]
    run_all(h)

    assert [s.topic for s in h.sink.sent] == [OUT, DLQ, OUT]
    dead = h.sink.to(DLQ)[0]
    assert (dead.key, dead.value) == (None, b"")
    assert dead.header("sentistream.errors.reason") == b"unreadable_record"
    assert dead.header("__connect.errors.offset") == b"1"
    assert b"header key is not UTF-8" in (dead.header("__connect.errors.exception.message") or b"")
    assert h.metric("sentistream_records_dead_lettered_total", reason="unreadable_record") == 1
    assert h.source.committed() == {TP0: 3}


def test_a_byte_order_mark_is_labelled_as_the_json_after_it():
    h = make([rec(0, b'\xef\xbb\xbf{"text": "bom", "id": 5}')], batch=1, auto_ack=True)
    h.worker.step()
    assert [b["id"] for b in h.labels_out()] == [5]
    assert h.labels_out()[0]["text"] == "bom"


def test_a_null_header_value_is_carried_as_empty_on_the_label_and_the_dead_letter():
    headers: list[tuple[str, bytes | None]] = [("trace", None), ("origin", b"x")]
    records = [rec(0, GOOD, headers=headers), rec(1, b"", headers=headers)]
    h = make(records, batch=2)
    run_all(h)
    label, dead = h.sink.to(OUT)[0], h.sink.to(DLQ)[0]
    assert label.headers == [("trace", b""), ("origin", b"x")]
    assert dead.headers[:2] == [("trace", b""), ("origin", b"x")]
    assert dead.header("sentistream.errors.reason") == b"empty_text"
    assert h.sink.refused == []
    assert h.source.committed() == {TP0: 2}


def test_a_tombstone_without_key_is_dead_lettered_with_an_empty_value():
    h = make([rec(0, None, key=None), rec(1, GOOD)], batch=2)
    run_all(h)
    dead = h.sink.to(DLQ)[0]
    assert (dead.key, dead.value) == (None, b"")
    assert dead.header("sentistream.errors.reason") == b"tombstone"
    assert h.sink.refused == []
    assert len(h.sink.to(OUT)) == 1


def test_a_tombstone_with_a_key_keeps_its_null_value():
    h = make([rec(0, None, key=b"user-1")], batch=1)
    run_all(h)
    dead = h.sink.to(DLQ)[0]
    assert (dead.key, dead.value) == (b"user-1", None)


def test_a_dead_letter_near_the_size_limit_is_truncated_and_says_so():
    limit = 20_000
    value = b"x" * (limit - 200)  # fits the broker; not with the error headers added
    headers = [("trace", b"t" * 100)]
    sink = FakeSink(max_request_size=limit)
    h = make([rec(0, value, headers=headers), rec(1, GOOD)], batch=2, sink=sink)
    run_all(h)

    assert sink.refused == []
    dead = h.sink.to(DLQ)[0]
    assert dead.header("sentistream.errors.reason") == b"oversized"
    assert dead.header("sentistream.errors.truncated") == b"true"
    assert dead.header("sentistream.errors.original_size") == str(len(value)).encode()
    assert dead.value is not None
    assert 0 < len(dead.value) < len(value)
    assert value.startswith(dead.value)
    assert dead.headers[0] == ("trace", b"t" * 100)
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(dead.key, dead.value, dead.headers)
    assert size <= limit
    assert h.source.committed() == {TP0: 2}


def test_a_dead_letter_whose_own_headers_are_too_big_drops_them_and_says_how_many():
    limit = 5_000
    headers = [(f"h{i}", b"v" * 1_000) for i in range(6)]
    sink = FakeSink(max_request_size=limit)
    h = make([rec(0, b"", headers=headers, key=b"k" * 3_000)], batch=1, sink=sink)
    run_all(h)
    assert sink.refused == []
    dead = h.sink.to(DLQ)[0]
    assert dead.header("sentistream.errors.headers_dropped") == b"6"
    assert dead.header("sentistream.errors.reason") == b"empty_text"


def test_a_label_the_producer_refuses_becomes_an_internal_error_dead_letter():
    # e.g. a label over max_request_size: the input limit set above what the producer takes
    sink = FakeSink(max_request_size=3_000)
    big = json.dumps({"text": "word " * 700, "id": 1})
    h = make([rec(0, big), rec(1, GOOD)], batch=2, sink=sink, max_record_bytes=10_000)
    run_all(h)

    assert [s.topic for s in h.sink.sent] == [DLQ, OUT]
    dead = h.sink.to(DLQ)[0]
    assert dead.header("sentistream.errors.reason") == b"internal_error"
    assert (
        dead.header("__connect.errors.exception.class.name")
        == b"kafka.errors.MessageSizeTooLargeError"
    )
    assert dead.value is not None
    assert big.encode().startswith(dead.value)  # the dead letter had to be cut to fit too
    assert dead.header("sentistream.errors.original_size") == str(len(big)).encode()
    assert h.metric("sentistream_records_dead_lettered_total", reason="internal_error") == 1
    assert h.source.committed() == {TP0: 2}


def test_a_record_whose_dead_letter_is_refused_too_gets_a_bare_one():
    def refuse_keyed(sent: Sent) -> bool:
        return sent.key == b"cursed"

    sink = FakeSink(refuse=refuse_keyed)
    h = make([rec(0, GOOD, key=b"cursed"), rec(1, GOOD)], batch=2, sink=sink)
    run_all(h)
    assert [s.topic for s in h.sink.sent] == [DLQ, OUT]
    bare = h.sink.to(DLQ)[0]
    assert (bare.key, bare.value) == (None, b"")
    assert bare.header("sentistream.errors.reason") == b"internal_error"
    assert bare.header("sentistream.errors.dead_letter_error") == b"builtins.TypeError"
    assert bare.header("__connect.errors.offset") == b"0"
    assert h.source.committed() == {TP0: 2}


def test_when_not_even_a_bare_dead_letter_is_taken_the_worker_stops():
    sink = FakeSink(refuse=lambda sent: sent.topic == DLQ)
    h = make([rec(0, b"")], batch=1, sink=sink)
    with pytest.raises(DeadLetterFailed, match="tweets-0@0"):
        h.worker.step()
    assert h.source.commits == []


def test_a_producer_that_takes_no_record_at_all_stops_the_worker_without_dead_letters():
    sink = FakeSink(unavailable=True)
    h = make([rec(0, GOOD), rec(1, b"")], batch=2, sink=sink)
    with pytest.raises(SinkUnavailable):
        h.worker.step()
    assert h.sink.sent == []
    assert h.source.commits == []


class _ExplodingClassifier(FakeClassifier):
    def encode(self, text: str) -> list[int]:
        if "boom" in text:
            raise KeyError("a tokenizer bug")
        return super().encode(text)


def test_whatever_tokenizing_raises_is_that_records_dead_letter_with_the_class():
    records = [rec(0, GOOD), rec(1, "boom goes the tokenizer"), rec(2, GOOD)]
    h = make(records, batch=3, classifier=_ExplodingClassifier())
    run_all(h)
    assert [s.topic for s in h.sink.sent] == [OUT, DLQ, OUT]
    dead = h.sink.to(DLQ)[0]
    assert dead.header("sentistream.errors.reason") == b"internal_error"
    assert dead.header("__connect.errors.exception.class.name") == b"builtins.KeyError"
    assert b"a tokenizer bug" in dead.header("__connect.errors.exception.message")


class _CountingClassifier(FakeClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.batch_calls: list[int] = []
        self.single_calls = 0

    def encode(self, text: str) -> list[int]:
        self.single_calls += 1
        if "boom" in text:
            raise KeyError("a tokenizer bug")
        return super().encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        self.batch_calls.append(len(texts))
        if any("boom" in text for text in texts):
            raise KeyError("a tokenizer bug")
        return [FakeClassifier.encode(self, text) for text in texts]


def test_a_micro_batch_is_encoded_in_one_call_of_the_texts_that_decoded():
    records = [rec(0, GOOD), rec(1, b"{not json"), rec(2, GOOD)]
    classifier = _CountingClassifier()
    h = make(records, batch=3, classifier=classifier)
    run_all(h)
    assert classifier.batch_calls == [2]
    assert classifier.single_calls == 0
    assert [s.topic for s in h.sink.sent] == [OUT, DLQ, OUT]


def test_a_batch_whose_encoding_fails_is_encoded_text_by_text_and_only_the_culprit_dies():
    records = [rec(0, GOOD), rec(1, "boom goes the tokenizer"), rec(2, GOOD)]
    classifier = _CountingClassifier()
    h = make(records, batch=3, classifier=classifier)
    run_all(h)
    assert classifier.batch_calls == [3]
    assert classifier.single_calls == 3
    assert [s.topic for s in h.sink.sent] == [OUT, DLQ, OUT]


class _WrongWidthClassifier(FakeClassifier):
    labels = ("negative", "neutral", "positive")  # the model gives two columns


def test_a_model_output_of_the_wrong_width_dead_letters_instead_of_crashing():
    h = make([rec(0, GOOD)], batch=1, classifier=_WrongWidthClassifier())
    run_all(h)
    dead = h.sink.to(DLQ)[0]
    assert dead.header("sentistream.errors.reason") == b"internal_error"
    assert b"2 probabilities for 3 labels" in dead.header("__connect.errors.exception.message")


# -- counters exist at 0 from the start ---------------------------------------------------------


def test_every_reason_and_label_counter_exists_at_zero_before_any_record():
    h = make()
    for reason in DEAD_LETTER_REASONS:
        value = h.registry.get_sample_value(
            "sentistream_records_dead_lettered_total", {"reason": reason}
        )
        assert value == 0, reason
    for reason in COMMIT_FAILURE_REASONS:
        value = h.registry.get_sample_value("sentistream_commit_failures_total", {"reason": reason})
        assert value == 0, reason
    for label in FakeClassifier.labels:
        value = h.registry.get_sample_value("sentistream_records_labeled_total", {"label": label})
        assert value == 0, label
    assert h.registry.get_sample_value("sentistream_in_flight_records") == 0
    assert h.registry.get_sample_value("sentistream_paused") == 0


# -- property: anything at all, through the loop ------------------------------------------------

_HEADER = st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=16))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def _value(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["bytes", "json", "tweet", "none", "big", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "json":
        return json.dumps(draw(_JSON)).encode()
    if kind == "tweet":
        body = {"text": draw(st.text(max_size=30)), "id": draw(_JSON)}
        return json.dumps(body).encode()
    if kind == "big":
        return b"y" * draw(st.integers(1_000, 6_000))
    if kind == "deep":
        return _nested(draw(st.integers(900, 3_000))).encode()
    return None


@st.composite
def _records(draw: st.DrawFn) -> list[FakeRecord]:
    count = draw(st.integers(1, 12))
    records = []
    next_offset = {0: 0, 1: 0}
    for _ in range(count):
        partition = draw(st.sampled_from([0, 1]))
        offset = next_offset[partition]
        next_offset[partition] += 1
        records.append(
            FakeRecord(
                IN,
                partition,
                offset,
                draw(st.integers(-1, 2**41)),
                draw(st.none() | st.binary(max_size=8)),
                draw(_value()),
                tuple(draw(st.lists(_HEADER, max_size=3))),
            )
        )
    return records


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=_records(),
    input_format=st.sampled_from(["auto", "json", "text"]),
    batch=st.integers(1, 5),
    max_request_size=st.sampled_from([2_000, 5_000, 1_048_576]),
)
def test_any_records_end_as_exactly_one_label_or_dead_letter_and_are_committed(
    records: Sequence[FakeRecord], input_format: InputFormat, batch: int, max_request_size: int
):
    sink = FakeSink(max_request_size=max_request_size)
    h = make(records, batch=batch, input_format=input_format, max_record_bytes=4_096, sink=sink)
    run_all(h, steps=len(records) + 2)  # never raises

    outcomes = outcome_per_offset(h)
    assert set(outcomes) == {(r.partition, r.offset) for r in records}
    assert set(outcomes.values()) == {1}
    labelled = h.metric("sentistream_records_labeled_total", label="positive") + h.metric(
        "sentistream_records_labeled_total", label="negative"
    )
    dead = sum(
        h.metric("sentistream_records_dead_lettered_total", reason=r) for r in DEAD_LETTER_REASONS
    )
    assert (labelled, dead) == (len(h.sink.to(OUT)), len(h.sink.to(DLQ)))
    assert labelled + dead == len(records)
    expected: dict[TopicPartition, int] = {}
    for r in records:
        expected[TopicPartition(IN, r.partition)] = r.offset + 1
    assert h.source.committed() == expected
    for sent in h.sink.to(OUT):
        body: Any = json.loads((sent.value or b"").decode("utf-8"), parse_constant=pytest.fail)
        assert body["label"] in FakeClassifier.labels
