"""The loop's dead letters: what becomes one, what it carries, and that it is committed past."""

from __future__ import annotations

import pytest

from sentistream.worker.core.classify import MAX_FAILED_BATCHES
from sentistream.worker.core.messages import InputFormat
from sentistream.worker.core.ports import (
    ModelBroken,
)
from tests.unit.fakes import FakeClassifier
from tests.unit.test_worker_loop import (
    DLQ,
    IN,
    OUT,
    TP0,
    make,
    rec,
    texts,
)

# -- dead letters -----------------------------------------------------------------------------

BAD_INPUTS = [
    pytest.param(None, "auto", "tombstone", id="tombstone"),
    pytest.param(b"x" * 1025, "auto", "oversized", id="oversized"),
    pytest.param(b"caf\xe9 \xff\xfe", "auto", "decode_error", id="decode_error"),
    pytest.param(b'{"text": "unclosed', "auto", "invalid_json", id="invalid_json_auto"),
    pytest.param(b"5", "json", "invalid_json", id="invalid_json_number"),
    pytest.param(b"plain words", "json", "invalid_json", id="invalid_json_text_in_json_mode"),
    pytest.param(b'{"id": 7}', "auto", "missing_text", id="missing_text"),
    pytest.param(b'{"text": 5}', "json", "missing_text", id="text_not_a_string"),
    pytest.param(b" \t\n ", "auto", "empty_text", id="empty_text"),
    pytest.param(b'{"text": "   "}', "json", "empty_text", id="empty_text_json"),
]


@pytest.mark.parametrize(("value", "input_format", "reason"), BAD_INPUTS)
def test_a_bad_record_is_dead_lettered_and_the_good_ones_around_it_labelled(
    value: bytes | None, input_format: InputFormat, reason: str
):
    good = '"a good one"' if input_format == "json" else "a good one"
    original_headers = [("trace-id", b"abc"), ("origin", b"firehose")]
    records = [
        rec(40, good),
        rec(41, value, key=b"user-9", headers=original_headers),
        rec(42, good),
    ]
    h = make(records, batch=3, input_format=input_format, max_record_bytes=1024)
    h.worker.step()

    assert [s.topic for s in h.sink.sent] == [OUT, DLQ, OUT]
    assert [body["source"]["offset"] for body in h.labels_out()] == [40, 42]
    dead = h.sink.to(DLQ)[0]
    assert dead.key == b"user-9"
    assert dead.value == value
    assert dead.headers[: len(original_headers)] == original_headers
    assert dead.header("__connect.errors.topic") == IN.encode()
    assert dead.header("__connect.errors.partition") == b"0"
    assert dead.header("__connect.errors.offset") == b"41"
    assert dead.header("__connect.errors.exception.class.name").endswith(b"InvalidMessage")
    assert dead.header("__connect.errors.exception.message")
    assert dead.header("sentistream.errors.reason") == reason.encode()

    # counted once Kafka acknowledged it, not before
    assert h.metric("sentistream_records_dead_lettered_total", reason=reason) == 0
    h.sink.ack_all()
    assert h.metric("sentistream_records_dead_lettered_total", reason=reason) == 1
    assert h.metric("sentistream_records_labeled_total", label="negative") == 2

    h.clock.advance(0.5)
    h.worker.step()
    assert h.source.commits == [{TP0: 43}]


def test_an_inference_failure_dead_letters_only_the_record_at_fault():
    poison = FakeClassifier.token_id("poison")
    classifier = FakeClassifier(fail_on=[poison])
    records = [rec(0, "good day"), rec(1, "this is poison"), rec(2, "nice"), rec(3, "ok then")]
    h = make(records, batch=4, classifier=classifier, auto_ack=True)
    h.worker.step()

    assert [s.topic for s in h.sink.sent] == [OUT, DLQ, OUT, OUT]
    assert [b["text"] for b in h.labels_out()] == ["good day", "nice", "ok then"]
    assert [b["label"] for b in h.labels_out()] == ["positive", "negative", "positive"]
    dead = h.sink.to(DLQ)[0]
    assert dead.value == b"this is poison"
    assert dead.header("sentistream.errors.reason") == b"inference_error"
    assert dead.header("__connect.errors.offset") == b"1"
    assert h.metric("sentistream_records_dead_lettered_total", reason="inference_error") == 1
    assert len(classifier.calls[0]) == 4  # one call for the whole batch first

    h.clock.advance(0.5)
    h.worker.step()
    assert h.source.commits == [{TP0: 4}]


def test_two_failing_records_side_by_side_do_not_condemn_the_whole_model():
    # Bisecting [p, p, g, g] gives a half [p, p] that fails entirely; the model is only broken
    # when every record of the batch fails, not every record of one half.
    poison = FakeClassifier.token_id("poison")
    classifier = FakeClassifier(fail_on=[poison])
    records = [rec(0, "poison one"), rec(1, "poison two"), rec(2, "good day"), rec(3, "fine")]
    h = make(records, batch=4, classifier=classifier, auto_ack=True)
    h.worker.step()

    assert [s.topic for s in h.sink.sent] == [DLQ, DLQ, OUT, OUT]
    assert h.metric("sentistream_records_dead_lettered_total", reason="inference_error") == 2
    assert [b["text"] for b in h.labels_out()] == ["good day", "fine"]


def test_a_classifier_that_always_fails_is_a_broken_model():
    h = make(texts(3), batch=3, classifier=FakeClassifier(always_fail=True), auto_ack=True)
    with pytest.raises(ModelBroken):
        h.worker.step()
    assert h.sink.sent == []
    assert h.source.commits == []


def test_batches_of_one_that_keep_failing_are_a_broken_model_but_one_poison_is_not():
    poison = FakeClassifier.token_id("poison")
    records = [rec(i, "poison") for i in range(MAX_FAILED_BATCHES)]
    h = make(
        [*records, rec(99, "good")],
        batch=1,
        classifier=FakeClassifier(fail_on=[poison]),
        auto_ack=True,
    )
    for _ in range(MAX_FAILED_BATCHES - 1):
        h.worker.step()
    assert h.metric("sentistream_records_dead_lettered_total", reason="inference_error") == (
        MAX_FAILED_BATCHES - 1
    )
    with pytest.raises(ModelBroken, match=f"{MAX_FAILED_BATCHES} batch"):
        h.worker.step()


def test_a_success_resets_the_count_of_failed_batches():
    poison = FakeClassifier.token_id("poison")
    records = []
    for i in range(MAX_FAILED_BATCHES * 2):
        records.append(rec(i, "poison" if i % 2 else "good"))
    h = make(records, batch=1, classifier=FakeClassifier(fail_on=[poison]), auto_ack=True)
    for _ in records:
        h.worker.step()
    assert h.metric("sentistream_records_dead_lettered_total", reason="inference_error") == (
        MAX_FAILED_BATCHES
    )
