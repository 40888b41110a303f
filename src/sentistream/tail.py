"""Formatting labelled results for people (``sentistream tail``)."""

from __future__ import annotations

import json

__all__ = ["format_label"]


def format_label(value: bytes | None, width: int = 100) -> str:
    """One line per label: label, its probability, source partition@offset, the text."""
    if value is None:
        return "(null)"
    try:
        result = json.loads(value)
        label = result["label"]
        probability = result["probabilities"][label]
        source = result["source"]
        text = " ".join(str(result.get("text", "")).split())
    except (ValueError, KeyError, TypeError):
        return f"(not a sentistream label) {value[:width]!r}"
    if len(text) > width:
        text = text[: width - 1] + "…"
    return (f"{label:<8} {probability:5.3f}  p{source['partition']}@{source['offset']:<7} "
            f"{text}")
