"""The label's value as consumers read it: the worker's JSON (``json``) or Kafka Connect's
JSON-with-schema envelope (``connect-json``), which a Connect sink (JDBC, Elasticsearch) loads
without custom code. Pure.

``connect-json`` writes one flat struct, ``sentistream.Label`` version 1 (its schema below is
fixed, plus one optional string field ``kept_<path>`` per ``--keep-fields`` path, dots as
underscores): ``id`` (the tweet id as a string; the source coordinates ``topic-partition@offset``
when the tweet has none), ``label``, ``p_negative``/``p_neutral``/``p_positive`` (null for a
class the model does not have), ``model_name``, ``model_version``, ``model_sha256``,
``source_topic``, ``source_partition``, ``source_offset``, ``event_time`` and ``labeled_at``
(Connect ``Timestamp``: milliseconds since the epoch), ``text`` (null with
``--no-output-text``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from sentistream.worker.core.messages import InputRecord, Tweet, check_finite, encode_label

__all__ = ["CONNECT_SCHEMA_NAME", "LabelFormat", "OutputFormat", "connect_schema"]

OutputFormat = Literal["json", "connect-json"]

CONNECT_SCHEMA_NAME = "sentistream.Label"
_TIMESTAMP = {"name": "org.apache.kafka.connect.data.Timestamp", "version": 1}
_CLASSES = ("negative", "neutral", "positive")


def _field(field_name: str, kind: str, *, optional: bool, **extra: Any) -> dict[str, Any]:
    return {"field": field_name, "type": kind, "optional": optional, **extra}


def kept_column(path: str) -> str:
    """The connect-json field of a kept input path: ``user.lang`` → ``kept_user_lang``."""
    return "kept_" + path.replace(".", "_")


def connect_schema(keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The Connect schema of every label this worker writes."""
    fields = [
        _field("id", "string", optional=False),
        _field("label", "string", optional=False),
        *(_field(f"p_{name}", "double", optional=True) for name in _CLASSES),
        _field("model_name", "string", optional=False),
        _field("model_version", "string", optional=False),
        _field("model_sha256", "string", optional=False),
        _field("source_topic", "string", optional=False),
        _field("source_partition", "int32", optional=False),
        _field("source_offset", "int64", optional=False),
        _field("event_time", "int64", optional=True, **_TIMESTAMP),
        _field("labeled_at", "int64", optional=False, **_TIMESTAMP),
        _field("text", "string", optional=True),
        *(_field(kept_column(path), "string", optional=True) for path in keep),
    ]
    return {
        "type": "struct",
        "name": CONNECT_SCHEMA_NAME,
        "version": 1,
        "optional": False,
        "fields": fields,
    }


def _as_text(value: Any) -> str | None:
    """A kept value or an id as the string column Connect declares (JSON for booleans and
    floats; an integer of any size in decimal)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value)


@dataclass(frozen=True)
class LabelFormat:
    format: OutputFormat = "json"
    include_text: bool = True
    """``--no-output-text`` leaves the tweet's text out (consumers that join by id)."""
    keep: tuple[str, ...] = ()
    """The ``--keep-fields`` paths (connect-json declares one field for each)."""
    _schema: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_schema", orjson.dumps(connect_schema(self.keep)))

    def encode(
        self,
        record: InputRecord,
        tweet: Tweet,
        label: str,
        probabilities: dict[str, float],
        model: dict[str, str],
        now_ms: float,
    ) -> bytes:
        """The output value for one labelled tweet (``ValueError`` for a probability that is
        not finite, ``TypeError`` for a value JSON cannot hold)."""
        if self.format == "json":
            return encode_label(
                record, tweet, label, probabilities, model, now_ms, include_text=self.include_text
            )
        check_finite(probabilities)
        kept = dict(tweet.kept)
        payload: dict[str, Any] = {
            "id": (
                f"{record.topic}-{record.partition}@{record.offset}"
                if tweet.id is None
                else _as_text(tweet.id)
            ),
            "label": label,
            **{f"p_{name}": _rounded(probabilities.get(name)) for name in _CLASSES},
            "model_name": model.get("name", ""),
            "model_version": model.get("version", ""),
            "model_sha256": model.get("sha256", ""),
            "source_topic": record.topic,
            "source_partition": record.partition,
            "source_offset": record.offset,
            "event_time": record.timestamp if record.timestamp >= 0 else None,
            "labeled_at": int(now_ms),
            "text": tweet.text if self.include_text else None,
            **{kept_column(path): _as_text(kept.get(path)) for path in self.keep},
        }
        return b'{"schema":' + self._schema + b',"payload":' + orjson.dumps(payload) + b"}"


def _rounded(p: float | None) -> float | None:
    return None if p is None else round(p, 6)
