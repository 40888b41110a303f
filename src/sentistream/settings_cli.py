"""Click options generated from a pydantic-settings class, so flags and variables never drift.

Each field ``max_batch_size`` becomes ``--max-batch-size``; a flag left out falls back to the
``SENTISTREAM_MAX_BATCH_SIZE`` variable, then to the field's default (pydantic-settings'
precedence: init arguments, then the environment, then defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import click
from pydantic import ValidationError
from pydantic_settings import BaseSettings

__all__ = ["build_settings", "settings_options"]

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=BaseSettings)


def _click_type(annotation: Any) -> Any:
    if get_origin(annotation) is Literal:
        return click.Choice([str(a) for a in get_args(annotation)])
    if annotation is Path:
        return click.Path(path_type=Path)
    return annotation


def settings_options(settings_class: type[BaseSettings], prefix: str) -> Callable[[F], F]:
    def decorate(command: F) -> F:
        for name, field in reversed(settings_class.model_fields.items()):
            flag = "--" + name.replace("_", "-")
            help_text = (
                f"{field.description} [env: {prefix}{name.upper()}; default: {field.default}]"
            )
            command = click.option(
                flag, name, type=_click_type(field.annotation), default=None, help=help_text
            )(command)
        return command

    return decorate


def build_settings(settings_class: type[S], flags: dict[str, Any]) -> S:
    """Flags given on the command line, over the environment, over the defaults."""
    try:
        return settings_class(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise click.UsageError(f"invalid settings: {problems}") from exc
