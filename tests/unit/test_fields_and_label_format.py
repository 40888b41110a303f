"""Where the text, id and kept fields are in a JSON value (presets for real producers), and
the two label formats, json and Kafka Connect's JSON with schema."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentistream.worker.core.fields import FieldMap, lookup, parse_paths
from sentistream.worker.core.label_format import LabelFormat, connect_schema
from sentistream.worker.core.messages import HeldRecord, InvalidMessage, Tweet, decode

V2 = FieldMap(text=("data.text",), id=("data.id",), keep=("data.author_id", "data.lang"))
V11 = FieldMap(text=("extended_tweet.full_text", "full_text", "text"), id=("id_str", "id"))


DEFAULT = FieldMap()


def _decode(value: object, fields: FieldMap = DEFAULT) -> Tweet:
    return decode(json.dumps(value).encode(), "json", 16_384, fields)


def test_paths_parse_from_a_comma_separated_setting():
    assert parse_paths(" a.b, c ,,") == ("a.b", "c")
    assert lookup({"a": {"b": 1}}, "a.b") == 1


def test_a_twitter_api_v2_tweet_is_read_with_its_preset():
    tweet = _decode(
        {"data": {"id": "1460323737035677698", "text": "so good", "author_id": "42", "lang": "en"}},
        V2,
    )
    assert tweet == Tweet(
        "so good", "1460323737035677698", (("data.author_id", "42"), ("data.lang", "en"))
    )


def test_a_v11_long_tweet_is_read_from_its_full_text_under_its_string_id():
    value = (
        b'{"id": 1460323737035677698, "id_str": "1460323737035677698", "text": "truncated\\u2026",'
        b' "truncated": true, "extended_tweet": {"full_text": "this is awful"}}'
    )
    tweet = decode(value, "json", 16_384, V11)
    assert tweet.text == "this is awful"
    assert tweet.id == "1460323737035677698"
    short = _decode({"id": 7, "text": "short one"}, V11)  # no id_str, no extended_tweet
    assert (short.text, short.id) == ("short one", 7)


def test_a_kafka_connect_envelope_is_looked_through():
    value = {
        "schema": {"type": "struct", "fields": []},
        "payload": {"id": 5, "text": "from a connector"},
    }
    assert _decode(value) == Tweet("from a connector", 5)
    # Not an envelope (another key beside them): the paths apply to the object itself.
    with pytest.raises(InvalidMessage, match="no `text`"):
        _decode({**value, "other": 1})


def test_a_present_path_that_is_not_a_string_is_refused_naming_it():
    with pytest.raises(InvalidMessage, match=r"`data\.text` is a int") as raised:
        _decode({"data": {"text": 3}}, V2)
    assert raised.value.reason == "missing_text"
    with pytest.raises(InvalidMessage, match=r"no `data\.text` field"):
        _decode({"text": "top level"}, V2)
    with pytest.raises(InvalidMessage, match=r"kept field `data\.lang` is a JSON object") as kept:
        _decode({"data": {"text": "t", "lang": {"code": "en"}}}, V2)
    assert kept.value.reason == "invalid_field"


def test_big_integer_ids_and_kept_numbers_stay_exact():
    fields = FieldMap(keep=("user_id",))
    tweet = decode(
        b'{"text": "t", "id": 123456789012345678901, "user_id": 1e2}', "json", 1024, fields
    )
    assert tweet.id == 123456789012345678901
    assert tweet.kept == (("user_id", 100.0),)


def _record(timestamp: int = 1_764_666_000_000) -> HeldRecord:
    return HeldRecord("tweets", 2, 41, timestamp, b"k", b"v")


MODEL = {"name": "sentistream-lstm", "version": "3", "sha256": "ab" * 32}
PROBS = {"negative": 0.1, "neutral": 0.2, "positive": 0.7}


def test_json_labels_carry_kept_fields_and_can_leave_the_text_out():
    tweet = Tweet("words", "9", (("lang", "en"),))
    with_text = orjson.loads(LabelFormat().encode(_record(), tweet, "positive", PROBS, MODEL, 0))
    assert with_text["text"] == "words"
    assert with_text["kept"] == {"lang": "en"}
    without = orjson.loads(
        LabelFormat(include_text=False).encode(_record(), tweet, "positive", PROBS, MODEL, 0)
    )
    assert "text" not in without
    assert without["id"] == "9"


def test_connect_json_labels_carry_the_fixed_schema_and_a_flat_payload():
    fmt = LabelFormat("connect-json", keep=("user.lang",))
    tweet = Tweet("words", 12, (("user.lang", "en"),))
    value = orjson.loads(fmt.encode(_record(), tweet, "positive", PROBS, MODEL, 1_764_666_000_123))
    assert value["schema"] == connect_schema(("user.lang",))
    assert [f["field"] for f in value["schema"]["fields"]][-2:] == ["text", "kept_user_lang"]
    assert value["payload"] == {
        "id": "12",
        "label": "positive",
        "p_negative": 0.1,
        "p_neutral": 0.2,
        "p_positive": 0.7,
        "model_name": "sentistream-lstm",
        "model_version": "3",
        "model_sha256": "ab" * 32,
        "source_topic": "tweets",
        "source_partition": 2,
        "source_offset": 41,
        "event_time": 1_764_666_000_000,
        "labeled_at": 1_764_666_000_123,
        "text": "words",
        "kept_user_lang": "en",
    }


def test_connect_json_without_an_id_or_event_time_or_neutral():
    fmt = LabelFormat("connect-json", include_text=False)
    value = orjson.loads(
        fmt.encode(
            _record(-1), Tweet("t"), "negative", {"negative": 0.9, "positive": 0.1}, MODEL, 5
        )
    )
    payload = value["payload"]
    assert payload["id"] == "tweets-2@41"
    assert payload["event_time"] is None
    assert payload["p_neutral"] is None
    assert payload["text"] is None


def test_connect_json_refuses_a_probability_that_is_not_finite():
    with pytest.raises(ValueError, match="not JSON compliant"):
        LabelFormat("connect-json").encode(
            _record(), Tweet("t"), "positive", {"positive": float("nan")}, MODEL, 0
        )


def test_every_connect_schema_field_is_in_the_payload_and_optional_ones_may_be_null():
    fmt = LabelFormat("connect-json", keep=("a", "b.c"))
    value = orjson.loads(fmt.encode(_record(), Tweet("t"), "neutral", PROBS, MODEL, 0))
    names = {f["field"]: f["optional"] for f in value["schema"]["fields"]}
    assert set(names) == set(value["payload"])
    for name, optional in names.items():
        assert optional or value["payload"][name] is not None, name


@given(st.text(min_size=1).filter(str.strip), st.one_of(st.none(), st.integers(), st.text()))
def test_any_tweet_round_trips_through_both_formats(text: str, tweet_id: object) -> None:
    tweet = Tweet(text, tweet_id)
    # The standard library reads integers beyond 64 bits exactly (orjson as floats).
    plain = json.loads(LabelFormat().encode(_record(), tweet, "neutral", PROBS, MODEL, 0))
    assert (plain["text"], plain["id"]) == (text, tweet_id)
    connect = orjson.loads(
        LabelFormat("connect-json").encode(_record(), tweet, "neutral", PROBS, MODEL, 0)
    )["payload"]
    assert connect["text"] == text
    assert connect["id"] == (
        "tweets-2@41"
        if tweet_id is None
        else str(tweet_id)
        if not isinstance(tweet_id, str)
        else tweet_id
    )
