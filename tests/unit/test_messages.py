"""Decoding input values, encoding labels and dead-letter headers: pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sentistream.worker.messages import (
    HEADER_PREFIX,
    InputFormat,
    InvalidMessage,
    Tweet,
    dead_letter_headers,
    decode,
    encode_label,
)
from tests.unit.fakes import FakeRecord

LIMIT = 64


def reason_of(value: bytes | None, input_format: InputFormat, max_bytes: int = LIMIT) -> str:
    with pytest.raises(InvalidMessage) as raised:
        decode(value, input_format, max_bytes)
    return raised.value.reason


# -- decoding what is valid -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "input_format", "expected"),
    [
        # json: an object with text (and optional id, kept as given) or a JSON string
        (b'{"text": "hello world", "id": 42}', "json", Tweet("hello world", 42)),
        (b'{"text": "hi there", "id": "1467810369"}', "json", Tweet("hi there", "1467810369")),
        (b'{"text": "no id here"}', "json", Tweet("no id here", None)),
        (b'{"text": "extra", "user": "bob", "id": 7}', "json", Tweet("extra", 7)),
        (b'"just a json string"', "json", Tweet("just a json string")),
        (b'  {"text": "leading space"}', "json", Tweet("leading space")),
        ('{"text": "caf\u00e9 \u2764"}'.encode(), "json", Tweet("caf\u00e9 \u2764")),
        # text: the value is the tweet, whatever it looks like
        (b"plain tweet", "text", Tweet("plain tweet")),
        (b'{"text": "not parsed"}', "text", Tweet('{"text": "not parsed"}')),
        (b'"quoted"', "text", Tweet('"quoted"')),
        # auto
        (b'{"text": "an object", "id": 3}', "auto", Tweet("an object", 3)),
        (b'"a json string"', "auto", Tweet("a json string")),
        (b"plain text tweet", "auto", Tweet("plain text tweet")),
        (b'"quoted" he said, not JSON', "auto", Tweet('"quoted" he said, not JSON')),
        (b'"unterminated quote', "auto", Tweet('"unterminated quote')),
        (b"12345", "auto", Tweet("12345")),
        (b"[1, 2] lists are text", "auto", Tweet("[1, 2] lists are text")),
        ("d\u00e9j\u00e0 vu \U0001f600".encode(), "auto", Tweet("d\u00e9j\u00e0 vu \U0001f600")),
    ],
)
def test_decode_valid(value: bytes, input_format: InputFormat, expected: Tweet):
    assert decode(value, input_format, 1024) == expected


def test_the_id_keeps_its_json_type():
    assert decode(b'{"text": "t", "id": 5}', "json", LIMIT).id == 5
    assert decode(b'{"text": "t", "id": "5"}', "auto", LIMIT).id == "5"


def test_a_value_of_exactly_the_limit_is_accepted():
    value = b"a" * LIMIT
    assert decode(value, "text", LIMIT).text == "a" * LIMIT


# -- every kind of bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "input_format", "reason"),
    [
        (None, "auto", "tombstone"),
        (None, "json", "tombstone"),
        (None, "text", "tombstone"),
        (b"a" * (LIMIT + 1), "text", "oversized"),
        (b'{"text": "' + b"a" * LIMIT + b'"}', "json", "oversized"),
        (b"\xff\xfe\xfd", "text", "decode_error"),
        (b"caf\xe9", "auto", "decode_error"),
        (b'{"text": "\xc3"}', "json", "decode_error"),
        (b"{not json", "auto", "invalid_json"),
        (b'{"text": "unclosed', "json", "invalid_json"),
        (b"plain text", "json", "invalid_json"),
        (b"5", "json", "invalid_json"),
        (b"3.5", "json", "invalid_json"),
        (b"[1, 2]", "json", "invalid_json"),
        (b"null", "json", "invalid_json"),
        (b"true", "json", "invalid_json"),
        (b"{}", "json", "missing_text"),
        (b'{"id": 1}', "auto", "missing_text"),
        (b'{"text": 5}', "json", "missing_text"),
        (b'{"text": null}', "auto", "missing_text"),
        (b'{"text": ["a"]}', "json", "missing_text"),
        (b"", "text", "empty_text"),
        (b"", "auto", "empty_text"),
        (b"   \t\n", "text", "empty_text"),
        (b"   \t\n", "auto", "empty_text"),
        (b'{"text": "  "}', "json", "empty_text"),
        (b'"\\n\\t "', "auto", "empty_text"),
    ],
)
def test_decode_invalid(value: bytes | None, input_format: InputFormat, reason: str):
    assert reason_of(value, input_format) == reason


def test_oversized_is_checked_before_decoding():
    assert reason_of(b"\xff" * (LIMIT + 1), "text") == "oversized"


def test_invalid_message_says_what_was_wrong():
    with pytest.raises(InvalidMessage, match="64"):
        decode(b"x" * 100, "text", LIMIT)
    with pytest.raises(InvalidMessage, match="int"):
        decode(b'{"text": 5}', "json", LIMIT)


# -- labels -----------------------------------------------------------------------------------


def _record(timestamp: int = 1_700_000_000_123) -> FakeRecord:
    return FakeRecord(
        topic="tweets",
        partition=2,
        offset=99,
        timestamp=timestamp,
        key=b"k",
        value=b'{"text": "caf\xc3\xa9 time", "id": "abc"}',
        headers=(("trace", b"t"),),
    )


def test_encode_label_round_trips_through_json():
    now_ms = 1_700_000_005_456.0
    value = encode_label(
        _record(),
        Tweet("caf\u00e9 time", "abc"),
        "positive",
        {"negative": 0.123456789, "positive": 0.876543211},
        {"name": "lstm", "version": "3"},
        now_ms,
    )
    assert "caf\u00e9".encode() in value  # not \u-escaped
    assert json.loads(value) == {
        "id": "abc",
        "text": "caf\u00e9 time",
        "label": "positive",
        "probabilities": {"negative": 0.123457, "positive": 0.876543},
        "model": {"name": "lstm", "version": "3"},
        "source": {"topic": "tweets", "partition": 2, "offset": 99},
        "event_time": "2023-11-14T22:13:20.123+00:00",
        "labeled_at": "2023-11-14T22:13:25.456+00:00",
    }
    assert datetime.fromisoformat(json.loads(value)["labeled_at"]).tzinfo == UTC


def test_encode_label_without_event_time_or_id():
    value = json.loads(
        encode_label(_record(timestamp=-1), Tweet("t"), "negative", {"negative": 1.0}, {}, 0.0)
    )
    assert value["event_time"] is None
    assert value["id"] is None
    assert value["labeled_at"] == "1970-01-01T00:00:00.000+00:00"


# -- dead letters -----------------------------------------------------------------------------


def test_dead_letter_headers_keep_the_original_headers_first():
    record = _record()
    error = InvalidMessage("missing_text", "JSON object has no `text` field")
    headers = dead_letter_headers(record, error)

    assert headers[0] == ("trace", b"t")
    added = dict(headers[1:])
    assert added == {
        f"{HEADER_PREFIX}topic": b"tweets",
        f"{HEADER_PREFIX}partition": b"2",
        f"{HEADER_PREFIX}offset": b"99",
        f"{HEADER_PREFIX}stage": b"VALUE_CONVERTER",
        f"{HEADER_PREFIX}exception.class.name": b"sentistream.InvalidMessage",
        f"{HEADER_PREFIX}exception.message": b"JSON object has no `text` field",
        "sentistream.errors.reason": b"missing_text",
    }
    assert len(headers) == 1 + len(added)


def test_dead_letter_headers_keep_repeated_original_headers_and_utf8_messages():
    record = FakeRecord("t", 0, 1, 0, None, None, (("a", b"1"), ("a", b"2")))
    headers = dead_letter_headers(record, InvalidMessage("tombstone", "nul \u2014 value"))
    assert headers[:2] == [("a", b"1"), ("a", b"2")]
    assert dict(headers)[f"{HEADER_PREFIX}exception.message"] == "nul \u2014 value".encode()
