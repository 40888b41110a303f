"""Where a tweet's text, id and the fields kept for the label are in a JSON value. Pure.

Each is an ordered list of dotted paths into the JSON object; the first path present wins
(``--text-field extended_tweet.full_text,full_text,text``). The defaults, ``text`` and
``id``, read the worker's own format. A Kafka Connect JSON envelope (an object whose only keys
are ``schema`` and ``payload``) is looked through: the paths apply to its ``payload``.

Presets for the producers people run (docs/message-formats.md shows each with an example):

========================  =====================================  ===============
source                    ``--text-field``                       ``--id-field``
========================  =====================================  ===============
Twitter API v2            ``data.text``                          ``data.id``
Twitter API v1.1          ``extended_tweet.full_text,full_text,   ``id_str,id``
                          text``
Kafka Connect envelope    (the defaults: ``payload.`` is implied) ``id``
========================  =====================================  ===============
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MISSING", "FieldMap", "lookup", "parse_paths"]

MISSING: Any = object()
"""What :func:`lookup` returns for a path that is not there."""

_SCALARS = (str, int, float, bool, type(None))


def parse_paths(value: str) -> tuple[str, ...]:
    """``"a.b, c"`` → ``("a.b", "c")``; empty entries are dropped."""
    return tuple(path.strip() for path in value.split(",") if path.strip())


def lookup(obj: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` in nested objects, or :data:`MISSING`."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return MISSING
        current = current[part]
    return current


def unwrap_connect_envelope(obj: dict[str, Any]) -> dict[str, Any]:
    """The ``payload`` of a Kafka Connect JSON envelope; any other object as it is."""
    if obj.keys() == {"schema", "payload"} and isinstance(obj["payload"], dict):
        payload: dict[str, Any] = obj["payload"]
        return payload
    return obj


@dataclass(frozen=True)
class FieldMap:
    text: tuple[str, ...] = ("text",)
    id: tuple[str, ...] = ("id",)
    keep: tuple[str, ...] = ()
    """Input fields copied into the label (scalars: string, number, boolean, null)."""

    def __post_init__(self) -> None:
        if not self.text:
            raise ValueError("text-field needs at least one path")
        if not self.id:
            raise ValueError("id-field needs at least one path")

    @classmethod
    def from_settings(cls, text: str, id_: str, keep: str) -> FieldMap:
        return cls(parse_paths(text), parse_paths(id_), parse_paths(keep))

    @property
    def is_default(self) -> bool:
        return self == FieldMap()

    def first(self, obj: Mapping[str, Any], paths: tuple[str, ...]) -> tuple[str, Any]:
        """The first of ``paths`` present in ``obj`` and its value; ``(paths[0], MISSING)``
        when none is."""
        for path in paths:
            value = lookup(obj, path)
            if value is not MISSING:
                return path, value
        return paths[0], MISSING

    def kept(self, obj: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """``(path, value)`` for each kept path present, in order; raises ``TypeError``
        naming the path for a value that is an object or an array."""
        found = []
        for path in self.keep:
            value = lookup(obj, path)
            if value is MISSING:
                continue
            if not isinstance(value, _SCALARS):
                raise TypeError(
                    f"kept field `{path}` is a JSON {_json_kind(value)}, expected a string, "
                    "number, boolean or null"
                )
            found.append((path, value))
        return tuple(found)


def _json_kind(value: Any) -> str:
    return (
        "object"
        if isinstance(value, Mapping)
        else "array"
        if isinstance(value, list)
        else (type(value).__name__)
    )
