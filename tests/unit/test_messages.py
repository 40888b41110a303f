"""Decoding input values, encoding labels and dead-letter headers: pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentistream.worker.core.messages import (
    HEADER_PREFIX,
    MAX_ERROR_MESSAGE_CHARS,
    InputFormat,
    InvalidMessage,
    Tweet,
    clean_headers,
    dead_letter_headers,
    decode,
    encode_label,
    error_headers,
    internal_error,
)
from tests.unit.fakes import FakeRecord

LIMIT = 64


def reason_of(value: bytes | None, input_format: InputFormat, max_bytes: int = LIMIT) -> str:
    """The reason ``decode`` refuses ``value`` with; fails the test on any other outcome."""
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


# -- hostile input: refused here, never an exception other than InvalidMessage ---------------

DEEP = 1_100


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("value", "input_format"),
    [
        # nesting deeper than the recursion limit, at the top and inside a field
        (_nested(DEEP).encode(), "json"),
        (('{"text": "fine words", "id": ' + _nested(DEEP) + "}").encode(), "auto"),
        (('{"text": "fine words", "extra": {"a": ' + _nested(DEEP) + "}}").encode(), "json"),
        # an integer of more digits than Python converts
        (('{"text": "fine", "id": ' + "9" * 5000 + "}").encode(), "auto"),
        # not JSON numbers (RFC 8259), or ones that overflow to infinity
        (b'{"text": "fine", "id": NaN}', "auto"),
        (b'{"text": "fine", "id": Infinity}', "json"),
        (b'{"text": "fine", "id": -Infinity}', "json"),
        (b'{"text": "fine", "id": 1e400}', "json"),
        (b'{"text": "fine", "id": [1, -1e999]}', "json"),
        # strings that decode but cannot be encoded back to UTF-8
        (b'{"text": "fine \\ud800 words"}', "json"),
        (b'{"text": "fine", "id": "\\udfff"}', "auto"),
        (b'"\\ud83d"', "json"),
    ],
    ids=[
        "deep_top",
        "deep_id_2kb",
        "deep_other_field",
        "huge_int",
        "nan",
        "infinity",
        "minus_infinity",
        "1e400",
        "1e999_in_list",
        "surrogate_text",
        "surrogate_id",
        "surrogate_json_string",
    ],
)
def test_hostile_json_is_invalid_json(value: bytes, input_format: InputFormat):
    assert reason_of(value, input_format, max_bytes=1_000_000) == "invalid_json"


def test_a_json_looking_string_with_a_surrogate_in_auto_mode_is_refused_too():
    # auto mode reads '"..."' as a JSON string; a lone surrogate must not get through there
    assert reason_of(b'"sad \\udc00 day"', "auto") == "invalid_json"


@pytest.mark.parametrize("input_format", ["auto", "json"])
def test_a_byte_order_mark_before_the_value_is_ignored(input_format: InputFormat):
    value = b'\xef\xbb\xbf{"text": "bom first", "id": 1}'
    assert decode(value, input_format, LIMIT) == Tweet("bom first", 1)


def test_a_byte_order_mark_before_plain_text_is_not_part_of_the_tweet():
    assert decode(b"\xef\xbb\xbfhello", "text", LIMIT) == Tweet("hello")


def test_encode_label_refuses_nan_rather_than_writing_non_json():
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_label(_record(), Tweet("t"), "negative", {"negative": float("nan")}, {}, 0.0)


def test_clean_headers_makes_null_values_empty():
    assert clean_headers([("a", None), ("b", b"1")]) == [("a", b""), ("b", b"1")]


def test_dead_letter_headers_survive_null_header_values_and_surrogates_in_the_message():
    record = FakeRecord("t", 0, 1, 0, None, None, (("nullable", None),))
    error = InvalidMessage("invalid_json", "bad \ud800 text")
    headers = dead_letter_headers(record, error)
    assert headers[0] == ("nullable", b"")
    assert dict(headers)[f"{HEADER_PREFIX}exception.message"] == b"bad \\ud800 text"


def test_an_internal_error_names_the_exception_class_it_wraps():
    error = internal_error(RecursionError("too deep"), "publish")
    assert error.reason == "internal_error"
    assert error.class_name == "builtins.RecursionError"
    assert "publish: RecursionError: too deep" in str(error)
    assert InvalidMessage("tombstone", "x").class_name == "sentistream.InvalidMessage"


def test_a_long_error_message_is_cut_in_the_header():
    record = FakeRecord("t", 0, 1, 0, None, b"v")
    headers = dict(error_headers(record, InvalidMessage("invalid_json", "x" * 50_000)))
    assert len(headers[f"{HEADER_PREFIX}exception.message"]) <= MAX_ERROR_MESSAGE_CHARS + 3


# -- property: decode returns a writable Tweet or raises InvalidMessage, nothing else --------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def _decode_or_reason(value: bytes | None, input_format: InputFormat) -> Tweet | str:
    try:
        return decode(value, input_format, 4096)
    except InvalidMessage as error:
        return error.reason


def _assert_writable(tweet: Tweet) -> None:
    out = encode_label(_record(), tweet, "positive", {"positive": 1.0}, {}, 0.0)
    assert json.loads(out.decode("utf-8"))["text"] == tweet.text


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=300), input_format=st.sampled_from(["auto", "json", "text"]))
def test_decode_any_bytes(value: bytes, input_format: InputFormat):
    result = _decode_or_reason(value, input_format)
    if isinstance(result, Tweet):
        _assert_writable(result)


@settings(max_examples=300, deadline=None)
@given(
    document=_JSON,
    text=st.text(),
    wrap=st.booleans(),
    input_format=st.sampled_from(["auto", "json"]),
)
def test_decode_any_json_document(document: Any, text: str, wrap: bool, input_format: InputFormat):
    body = {"text": text, "id": document} if wrap else document
    raw = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
    result = _decode_or_reason(raw, input_format)
    if isinstance(result, Tweet):
        _assert_writable(result)


# -- orjson: the same readings and writings as the standard library --------------------------


@pytest.mark.parametrize(
    "tweet_id",
    [
        2**64,  # orjson alone would read this as a float
        -(2**63) - 1,
        int("9" * 300),
        1.5,
        1e16,
        [1, 2**70, {"deep": 2**65}],
        {"a": None, "b": True},
    ],
    ids=["2**64", "below_int64", "300_digits", "float", "1e16", "list", "object"],
)
def test_an_id_is_kept_exactly_and_written_back_exactly(tweet_id: Any):
    raw = json.dumps({"text": "fine words", "id": tweet_id}).encode()
    tweet = decode(raw, "auto", 1_000_000)
    assert tweet == Tweet("fine words", tweet_id)
    assert type(tweet.id) is type(tweet_id)
    out = encode_label(_record(), tweet, "positive", {"positive": 1.0}, {}, 0.0)
    assert json.loads(out)["id"] == tweet_id


def test_a_quoted_value_that_is_not_a_json_string_stays_text_in_auto_mode():
    assert decode(b'"\\x" is not an escape', "auto", LIMIT) == Tweet('"\\x" is not an escape')


def test_encode_label_writes_compact_utf8_with_line_separators_as_they_are():
    text = 'line\u2028sep \u00e9 \U0001f600 "quoted" \\ back'
    out = encode_label(_record(), Tweet(text, 1), "positive", {"positive": 1.0}, {}, 0.0)
    assert b": " not in out
    assert b", " not in out
    assert "\u00e9 \U0001f600".encode() in out
    assert json.loads(out)["text"] == text


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_encode_label_refuses_every_non_finite_probability(bad: float):
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_label(_record(), Tweet("t"), "negative", {"a": 0.5, "negative": bad}, {}, 0.0)


_FINITE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    tweet_id=_FINITE_JSON,
    text=st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1).filter(str.strip),
)
def test_decode_reads_what_the_standard_library_reads(tweet_id: Any, text: str):
    raw = json.dumps({"text": text, "id": tweet_id}).encode()
    expected = json.loads(raw)
    tweet = decode(raw, "json", 1_000_000)
    assert tweet == Tweet(expected["text"], expected["id"])
    out = encode_label(_record(), tweet, "positive", {"positive": 1.0}, {}, 0.0)
    assert json.loads(out)["id"] == expected["id"]
