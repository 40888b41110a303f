"""Click options for sentistream's settings, so flags and variables never drift.

:func:`settings_options` turns each field of a pydantic-settings class into a click option:
``max_batch_size`` becomes ``--max-batch-size``, read from ``SENTISTREAM_MAX_BATCH_SIZE`` when
the flag is left out, with the field's default, description and bounds (a flag wins over the
variable, the variable over the default). Click checks the types and bounds, so a bad value is
one line that names where it came from: ``Invalid value for SENTISTREAM_MAX_WAIT_MS: 'abc' is
not a valid integer`` or ``Invalid value for '--max-batch-size': 0 is not in the range
1<=x<=4096``. :func:`build_settings` then builds the frozen settings object.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import click
from click.core import ParameterSource
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

__all__ = [
    "FloatRange",
    "IntRange",
    "Option",
    "build_settings",
    "is_secret",
    "settings_options",
    "unknown_variables",
]

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=BaseSettings)


class IntRange(click.IntRange):
    """``click.IntRange`` that says "not a valid integer" (not "integer range") for ``abc``."""

    name = "integer"


class FloatRange(click.FloatRange):
    """``click.FloatRange`` that says "not a valid number" for ``abc``."""

    name = "number"


class Option(click.Option):
    """A click option with two additions.

    ``aliases``: older names of the option that keep working but are not shown in ``--help``
    (``--model`` for ``--model-dir``). And an error about a value read from the environment
    names the variable, not the flag (``Invalid value for SENTISTREAM_MAX_WAIT_MS: ...``).
    """

    def __init__(self, *args: Any, aliases: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unknown = set(aliases) - set(self.opts)
        if unknown:
            raise TypeError(f"aliases {sorted(unknown)} are not names of {self.opts}")
        self.aliases = tuple(aliases)

    @property
    def shown_opts(self) -> list[str]:
        return [name for name in self.opts if name not in self.aliases]

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        every = self.opts
        self.opts = self.shown_opts
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = every

    def get_error_hint(self, ctx: click.Context | None) -> str:
        if (
            ctx is not None
            and self.name is not None
            and isinstance(self.envvar, str)
            and ctx.get_parameter_source(self.name) is ParameterSource.ENVIRONMENT
        ):
            return self.envvar
        return " / ".join(f"'{name}'" for name in self.shown_opts)


def _bounds(field: FieldInfo) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            bounds["min"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            bounds.update(min=item.gt, min_open=True)
        elif isinstance(item, annotated_types.Le):
            bounds["max"] = item.le
        elif isinstance(item, annotated_types.Lt):
            bounds.update(max=item.lt, max_open=True)
    return bounds


def click_type(field: FieldInfo) -> Any:
    """The click type that checks what pydantic would: choices, integers and numbers with the
    field's bounds, paths."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, UnionType):  # ``Path | None``: the optional type
        (annotation,) = [a for a in get_args(annotation) if a is not NoneType]
    if get_origin(annotation) is Literal:
        return click.Choice([str(a) for a in get_args(annotation)], case_sensitive=False)
    if annotation is Path:
        return click.Path(path_type=Path)
    bounds = _bounds(field)
    if annotation is int:
        return IntRange(**bounds) if bounds else int
    if annotation is float:
        return FloatRange(**bounds) if bounds else float
    return annotation


def is_secret(field: FieldInfo) -> bool:
    """A secret has no flag: its value would show in ``ps``. It comes from its variable."""
    return field.annotation is SecretStr


def settings_options(
    settings_class: type[BaseSettings],
    prefix: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> Callable[[F], F]:
    """One option per field of ``settings_class``; ``defaults`` replaces field defaults (for
    a default that depends on where the package is installed), ``aliases`` gives a field
    older flag names that keep working without being shown (``{"model_dir": ["--model"]}``).
    A secret (``SecretStr``) gets no option: pydantic-settings reads it from its variable. A
    boolean that defaults to true is ``--name/--no-name``."""
    defaults = defaults or {}
    aliases = aliases or {}

    def decorate(command: F) -> F:
        for name, field in reversed(settings_class.model_fields.items()):
            if is_secret(field):
                continue
            is_flag = field.annotation is bool
            flag = "--" + name.replace("_", "-")
            if is_flag and field.default is True:
                flag += "/--no-" + name.replace("_", "-")
            older = list(aliases.get(name, ()))
            command = click.option(
                flag,
                *older,
                name,
                cls=Option,
                aliases=older,
                type=None if is_flag else click_type(field),
                is_flag=is_flag,
                default=defaults.get(name, field.default),
                show_default=True,
                envvar=prefix + name.upper(),
                show_envvar=True,
                help=field.description,
            )(command)
        return command

    return decorate


_MESSAGES = {
    "greater_than_equal": "must be ≥ {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be ≤ {le}",
    "less_than": "must be < {lt}",
    "int_parsing": "not an integer",
    "float_parsing": "not a number",
}


def _describe(error: Any, prefix: str) -> str:
    """``SENTISTREAM_MAX_WAIT_MS='abc': not an integer`` or ``--max-batch-size 0: must be
    ≥ 1``: where the value came from, the value, what is wrong with it."""
    field = str(error["loc"][0]) if error["loc"] else ""
    value = error.get("input")
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(field) if ctx is not None and field else None
    if source is ParameterSource.ENVIRONMENT:
        where = f"{prefix}{field.upper()}={value!r}"
    elif source is ParameterSource.COMMANDLINE:
        where = f"--{field.replace('_', '-')} {value}"
    else:
        where = f"{field}={value!r}" if field else "settings"
    template = _MESSAGES.get(error["type"])
    problem = template.format(**error.get("ctx", {})) if template else error["msg"]
    return f"{where}: {problem}"


def build_settings(settings_class: type[S], flags: dict[str, Any]) -> S:
    """The settings object from the options' values (flags, variables or defaults)."""
    try:
        return settings_class(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        prefix = str(settings_class.model_config.get("env_prefix", ""))
        problems = "; ".join(_describe(error, prefix) for error in exc.errors())
        raise click.UsageError(f"invalid settings: {problems}") from exc


def unknown_variables(environ: Mapping[str, str], prefix: str, known: Iterable[str]) -> list[str]:
    """A warning for each ``prefix``-ed variable that is no setting (a typo is otherwise
    silently ignored), with the closest known name."""
    known = sorted(known)
    warnings = []
    for name in sorted(environ):
        if not name.upper().startswith(prefix) or name in known:
            continue
        # Compared without the prefix, which every name shares.
        suffixes = [k.removeprefix(prefix) for k in known]
        close = difflib.get_close_matches(name.upper().removeprefix(prefix), suffixes, n=1)
        hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known: {', '.join(known)}"
        warnings.append(f"warning: {name} is not a sentistream setting (ignored){hint}")
    return warnings
