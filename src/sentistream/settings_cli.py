"""Moved to :mod:`sentistream.cli.settings_options`; this name stays for the code that still
imports it."""

from sentistream.cli.settings_options import (
    FloatRange,
    IntRange,
    Option,
    build_settings,
    click_type,
    is_secret,
    settings_options,
    unknown_variables,
)

__all__ = [
    "FloatRange",
    "IntRange",
    "Option",
    "build_settings",
    "click_type",
    "is_secret",
    "settings_options",
    "unknown_variables",
]
