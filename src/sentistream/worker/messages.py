"""Message formats: decoding input records, encoding labels and dead letters. Pure functions.

Input value (``--input-format``):

* ``json``: an object ``{"text": "...", "id": ...}`` (``id`` optional, kept as given) or a JSON
  string;
* ``text``: the UTF-8 value is the tweet;
* ``auto``: a value starting with ``{`` must be such an object; otherwise a value that parses as
  a JSON string is that string, and anything else is plain text.

Output value: one JSON object per input (see :func:`encode_label`). Dead letters keep the
original key, value and headers and add Kafka Connect's error headers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

__all__ = [
    "HEADER_PREFIX",
    "InputRecord",
    "InvalidMessage",
    "Tweet",
    "dead_letter_headers",
    "decode",
    "encode_label",
]

InputFormat = Literal["auto", "json", "text"]
Headers = Sequence[tuple[str, bytes]]

HEADER_PREFIX = "__connect.errors."


class InputRecord(Protocol):
    """What the worker reads of a consumed record (kafka-python's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers: ...


@dataclass(frozen=True)
class Tweet:
    text: str
    id: Any = None


class InvalidMessage(ValueError):  # noqa: N818 - names the record, not a bug
    """A record that can never be classified; it goes to the dead-letter topic."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode(value: bytes | None, input_format: InputFormat, max_bytes: int) -> Tweet:
    """Turn a record value into a :class:`Tweet` or raise :class:`InvalidMessage`."""
    if value is None:
        raise InvalidMessage("tombstone", "record value is null (a tombstone)")
    if len(value) > max_bytes:
        raise InvalidMessage("oversized", f"value is {len(value)} bytes, limit {max_bytes}")
    try:
        raw = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage("decode_error", f"value is not UTF-8: {exc}") from exc
    tweet = _parse(raw, input_format)
    if not tweet.text.strip():
        raise InvalidMessage("empty_text", "text is empty or only white space")
    return tweet


def _parse(raw: str, input_format: InputFormat) -> Tweet:
    if input_format == "text":
        return Tweet(raw)
    stripped = raw.lstrip()
    if input_format == "auto" and not stripped.startswith("{"):
        if stripped.startswith('"'):
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError:
                return Tweet(raw)
            if isinstance(parsed, str):
                return Tweet(parsed)
        return Tweet(raw)
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidMessage("invalid_json", f"value is not valid JSON: {exc}") from exc
    if isinstance(parsed, str):
        return Tweet(parsed)
    if not isinstance(parsed, dict):
        raise InvalidMessage(
            "invalid_json", f"JSON value is a {type(parsed).__name__}, expected an object"
        )
    if "text" not in parsed:
        raise InvalidMessage("missing_text", "JSON object has no `text` field")
    text = parsed["text"]
    if not isinstance(text, str):
        raise InvalidMessage(
            "missing_text", f"`text` is a {type(text).__name__}, expected a string"
        )
    return Tweet(text, parsed.get("id"))


def _iso(millis: float) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")


def encode_label(
    record: InputRecord,
    tweet: Tweet,
    label: str,
    probabilities: dict[str, float],
    model: dict[str, str],
    now_ms: float,
) -> bytes:
    """The output value for one labelled tweet."""
    return json.dumps(
        {
            "id": tweet.id,
            "text": tweet.text,
            "label": label,
            "probabilities": {name: round(p, 6) for name, p in probabilities.items()},
            "model": model,
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
            "event_time": _iso(record.timestamp) if record.timestamp >= 0 else None,
            "labeled_at": _iso(now_ms),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def dead_letter_headers(
    record: InputRecord, error: InvalidMessage, stage: str = "VALUE_CONVERTER"
) -> list[tuple[str, bytes]]:
    """The record's own headers plus Kafka Connect-style error headers."""
    exception_class = f"sentistream.{type(error).__name__}"
    return [
        *record.headers,
        (f"{HEADER_PREFIX}topic", record.topic.encode()),
        (f"{HEADER_PREFIX}partition", str(record.partition).encode()),
        (f"{HEADER_PREFIX}offset", str(record.offset).encode()),
        (f"{HEADER_PREFIX}stage", stage.encode()),
        (f"{HEADER_PREFIX}exception.class.name", exception_class.encode()),
        (f"{HEADER_PREFIX}exception.message", str(error).encode("utf-8")),
        ("sentistream.errors.reason", error.reason.encode()),
    ]
