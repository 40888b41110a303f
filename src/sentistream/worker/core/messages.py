"""Message formats: decoding input records, encoding labels and dead letters. Pure functions.

Input value (``--input-format``):

* ``json``: an object ``{"text": "...", "id": ...}`` (``id`` optional, kept as given; where
  the text and id are, and which fields are kept, is a :class:`~.fields.FieldMap`) or a JSON
  string;
* ``text``: the UTF-8 value is the tweet;
* ``auto``: a value starting with ``{`` must be such an object; otherwise a value that parses as
  a JSON string is that string, and anything else is plain text.

JSON is read and written with ``orjson`` (faster than the standard library's ``json`` each
way; BENCHMARKS.md has the figure). Hostile input is refused here, as ``invalid_json``, rather than
left to fail later: nesting deeper than 1,024 levels, numbers that overflow to infinity
(integers of hundreds of digits among them), ``NaN`` and ``Infinity`` (the output is strict
RFC 8259 JSON), and strings holding lone surrogates (``"\\ud800"`` could not be written back
as UTF-8). orjson reads an integer beyond 64 bits as a float; an ``id`` that is not a string,
an integer, a boolean or null is therefore read again with the standard library, so an id is
always kept exactly as given. A UTF-8 byte-order mark before the value is ignored.

Output value: one JSON object per input (see :func:`encode_label`). Dead letters keep the
original key, value and headers and add Kafka Connect's error headers.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol

import orjson

from sentistream.worker.core.fields import MISSING, FieldMap, lookup, unwrap_connect_envelope

__all__ = [
    "HEADER_PREFIX",
    "HeldRecord",
    "InputRecord",
    "InvalidMessage",
    "Tweet",
    "UnreadableRecord",
    "check_finite",
    "clean_headers",
    "dead_letter_headers",
    "decode",
    "decode_record",
    "encode_label",
    "internal_error",
]

InputFormat = Literal["auto", "json", "text"]
Headers = Sequence[tuple[str, bytes | None]]
"""kafka-python hands over a header whose value is null as ``(key, None)``."""

HEADER_PREFIX = "__connect.errors."

DEFAULT_FIELDS = FieldMap()


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


class HeldRecord(NamedTuple):
    """An :class:`InputRecord` held in memory: the fields of kafka-python's ConsumerRecord that
    the worker reads (the confluent-kafka adapter builds these, the benchmark's stage timings
    and the tests' fake source use them; a tuple: cheapest to build)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    """Milliseconds since the epoch (-1: none)."""
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


@dataclass(frozen=True)
class UnreadableRecord:
    """A record the Kafka client could not parse (kafka-python raises ``CorruptRecordError``
    for, e.g., a header key that is not UTF-8), in place of the record at its offset: the
    consumer skips past it and the loop dead-letters this with reason ``unreadable_record``,
    so it is counted and committed past instead of stopping the worker at every start. Its key,
    value and headers are unknown (empty); the dead letter's ``__connect.errors.*`` headers
    name the topic, partition and offset to fetch the raw bytes from (``kcat -C -o``)."""

    topic: str
    partition: int
    offset: int
    problem: str
    timestamp: int = -1
    key: bytes | None = None
    value: bytes | None = None
    headers: Headers = ()


@dataclass(frozen=True)
class Tweet:
    text: str
    id: Any = None
    kept: tuple[tuple[str, Any], ...] = ()
    """``(path, value)`` of the input fields copied into the label (``--keep-fields``)."""


class InvalidMessage(ValueError):  # noqa: N818 - names the record, not a bug
    """A record that can never be classified; it goes to the dead-letter topic."""

    def __init__(self, reason: str, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.cause = cause
        """For ``internal_error``: what the record's handling raised."""

    @property
    def class_name(self) -> str:
        """The exception class for the ``exception.class.name`` header."""
        if self.cause is not None:
            kind = type(self.cause)
            return f"{kind.__module__}.{kind.__qualname__}"
        return f"sentistream.{type(self).__name__}"


def internal_error(exc: BaseException, stage: str) -> InvalidMessage:
    """Whatever a record's handling raised, as that record's dead-letter verdict."""
    return InvalidMessage("internal_error", f"{stage}: {type(exc).__name__}: {exc}", cause=exc)


def decode_record(
    record: InputRecord,
    input_format: InputFormat,
    max_bytes: int,
    fields: FieldMap = DEFAULT_FIELDS,
) -> Tweet:
    """:func:`decode` of the record's value; an :class:`UnreadableRecord` is refused first."""
    if isinstance(record, UnreadableRecord):
        raise InvalidMessage(
            "unreadable_record", f"the Kafka client could not read it: {record.problem}"
        )
    return decode(record.value, input_format, max_bytes, fields)


def decode(
    value: bytes | None,
    input_format: InputFormat,
    max_bytes: int,
    fields: FieldMap = DEFAULT_FIELDS,
) -> Tweet:
    """Turn a record value into a :class:`Tweet` or raise :class:`InvalidMessage`; a JSON
    object's text, id and kept fields are where ``fields`` says."""
    if value is None:
        raise InvalidMessage("tombstone", "record value is null (a tombstone)")
    if len(value) > max_bytes:
        raise InvalidMessage("oversized", f"value is {len(value)} bytes, limit {max_bytes}")
    try:
        raw = value.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise InvalidMessage("decode_error", f"value is not UTF-8: {exc}") from exc
    tweet = _parse(raw, input_format, fields)
    _check_writable(tweet)
    if not tweet.text.strip():
        raise InvalidMessage("empty_text", "text is empty or only white space")
    return tweet


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:40]} is out of range")
    return number


def _loads(raw: str) -> Any:
    """Strict JSON: orjson refuses deep nesting, NaN/Infinity, overflowing numbers and lone
    surrogates with :class:`orjson.JSONDecodeError` (a ``ValueError``)."""
    try:
        return orjson.loads(raw)
    except ValueError as exc:
        raise InvalidMessage("invalid_json", f"value is not valid JSON: {exc}") from exc


def _loads_exact(raw: str) -> Any:
    """The standard library's reading of a document orjson accepted: integers stay exact."""
    try:
        return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError as exc:  # pragma: no cover - orjson refused deeper nesting first
        raise InvalidMessage("invalid_json", "value is nested too deeply") from exc
    except ValueError as exc:  # a 5,000-digit integer
        raise InvalidMessage("invalid_json", f"value is not valid JSON: {exc}") from exc


_SIMPLE_ID = (str, int, bool, type(None))


def _is_json_string(raw: str) -> bool:
    """Whether the standard library reads ``raw`` as a JSON string (it accepts lone
    surrogates, which orjson refuses)."""
    try:
        return isinstance(json.loads(raw), str)
    except ValueError:
        return False


def _check_writable(tweet: Tweet) -> None:
    """The tweet can be written back as strict UTF-8 JSON.

    Lone surrogates never get this far (the UTF-8 decoder and orjson refuse them); an ``id``
    other than a string, integer, boolean or null is checked by writing it.
    """
    if isinstance(tweet.id, _SIMPLE_ID):
        return
    try:
        _dumps(tweet.id)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidMessage(
            "invalid_json", f"value cannot be written back as UTF-8 JSON: {exc}"
        ) from exc


def _parse(raw: str, input_format: InputFormat, fields: FieldMap) -> Tweet:
    if input_format == "text":
        return Tweet(raw)
    stripped = raw.lstrip()
    if input_format == "auto" and not stripped.startswith("{"):
        if stripped.startswith('"'):
            try:
                parsed = _loads(raw)
            except InvalidMessage:
                if _is_json_string(raw):  # one orjson refuses: it holds a lone surrogate
                    raise
                return Tweet(raw)
            if isinstance(parsed, str):
                return Tweet(parsed)
        return Tweet(raw)
    parsed = _loads(raw)
    if isinstance(parsed, str):
        return Tweet(parsed)
    if not isinstance(parsed, dict):
        raise InvalidMessage(
            "invalid_json", f"JSON value is a {type(parsed).__name__}, expected an object"
        )
    return _from_object(unwrap_connect_envelope(parsed), raw, fields)


def _from_object(obj: dict[str, Any], raw: str, fields: FieldMap) -> Tweet:
    path, text = fields.first(obj, fields.text)
    if text is MISSING:
        names = " or ".join(f"`{p}`" for p in fields.text)
        raise InvalidMessage("missing_text", f"JSON object has no {names} field")
    if not isinstance(text, str):
        raise InvalidMessage(
            "missing_text", f"`{path}` is a {type(text).__name__}, expected a string"
        )
    id_path, tweet_id = fields.first(obj, fields.id)
    tweet_id = None if tweet_id is MISSING else tweet_id
    try:
        kept = fields.kept(obj)
    except TypeError as exc:
        raise InvalidMessage("invalid_field", str(exc)) from exc
    floats = not isinstance(tweet_id, _SIMPLE_ID) or any(isinstance(v, float) for _, v in kept)
    if floats:  # a float may be an integer orjson rounded: read those exactly
        exact = unwrap_connect_envelope(_loads_exact(raw))
        if not isinstance(tweet_id, _SIMPLE_ID):
            tweet_id = lookup(exact, id_path)
        kept = tuple((p, lookup(exact, p) if isinstance(v, float) else v) for p, v in kept)
    return Tweet(text, tweet_id, kept)


@functools.lru_cache(maxsize=4096)
def _iso(millis: float) -> str:
    """ISO 8601 UTC with milliseconds (cached: a micro-batch shares its ``labeled_at``, and
    tweets produced in the same millisecond their ``event_time``)."""
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")


def _dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; integers beyond 64 bits (which orjson refuses) through the
    standard library."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8"
        )


def check_finite(probabilities: dict[str, float]) -> None:
    """``ValueError`` for a probability that is not finite (orjson would write ``null``)."""
    for name, p in probabilities.items():
        if not math.isfinite(p):
            raise ValueError(f"Out of range float values are not JSON compliant: {name}={p}")


def encode_label(
    record: InputRecord,
    tweet: Tweet,
    label: str,
    probabilities: dict[str, float],
    model: dict[str, str],
    now_ms: float,
    *,
    include_text: bool = True,
) -> bytes:
    """The output value for one labelled tweet (the ``json`` format; ``kept`` holds the
    ``--keep-fields`` found, and is left out when there are none; ``text`` is left out with
    ``include_text=False``).

    Raises ``ValueError`` for a probability that is not finite (orjson would write ``null``
    for it) and ``TypeError`` for a value JSON cannot hold.
    """
    check_finite(probabilities)
    rounded = {name: round(p, 6) for name, p in probabilities.items()}
    value: dict[str, Any] = {"id": tweet.id}
    if include_text:
        value["text"] = tweet.text
    value.update(
        {
            "label": label,
            "probabilities": rounded,
            "model": model,
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
            "event_time": _iso(record.timestamp) if record.timestamp >= 0 else None,
            "labeled_at": _iso(now_ms),
        }
    )
    if tweet.kept:
        value["kept"] = dict(tweet.kept)
    return _dumps(value)


#: Longest ``exception.message`` header, in characters (an exception may quote its input).
MAX_ERROR_MESSAGE_CHARS = 1_000


def clean_headers(headers: Headers) -> list[tuple[str, bytes]]:
    """Headers kafka-python's producer accepts: a null value becomes empty (it refuses None)."""
    return [(name, b"" if value is None else bytes(value)) for name, value in headers]


def error_headers(
    record: InputRecord, error: InvalidMessage, stage: str = "VALUE_CONVERTER"
) -> list[tuple[str, bytes]]:
    """Kafka Connect-style error headers, plus ``sentistream.errors.reason``."""
    message = str(error)
    if len(message) > MAX_ERROR_MESSAGE_CHARS:
        message = message[:MAX_ERROR_MESSAGE_CHARS] + "…"
    return [
        (f"{HEADER_PREFIX}topic", record.topic.encode()),
        (f"{HEADER_PREFIX}partition", str(record.partition).encode()),
        (f"{HEADER_PREFIX}offset", str(record.offset).encode()),
        (f"{HEADER_PREFIX}stage", stage.encode()),
        (f"{HEADER_PREFIX}exception.class.name", error.class_name.encode()),
        (f"{HEADER_PREFIX}exception.message", message.encode("utf-8", "backslashreplace")),
        ("sentistream.errors.reason", error.reason.encode()),
    ]


def dead_letter_headers(
    record: InputRecord, error: InvalidMessage, stage: str = "VALUE_CONVERTER"
) -> list[tuple[str, bytes]]:
    """The record's own headers (null values made empty) plus the error headers."""
    return [*clean_headers(record.headers), *error_headers(record, error, stage)]
