"""Options shared by several commands, each declared once: a worker setting as another
command's flag, the connection settings, the model folder, the CSV encoding."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from sentistream.cli.settings_options import Option, build_settings, click_type, settings_options
from sentistream.connection import KafkaConnection
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

__all__ = [
    "DEFAULT_MODEL_DIR",
    "PROJECT_ROOT",
    "connection_options",
    "connection_options_with",
    "default_model_dir",
    "encoding_option",
    "existing_dir",
    "existing_file",
    "log",
    "model_option",
    "out_dir",
    "positive_int",
    "setting_option",
]

F = TypeVar("F", bound=Callable[..., Any])

_PACKAGE = Path(__file__).resolve().parents[1]  # src/sentistream
PROJECT_ROOT = _PACKAGE.parents[1]


def default_model_dir() -> Path:
    """The shipped model: inside the installed package if it carries one, else in the project
    checkout the package runs from, else relative to the current folder (the container
    image's working directory), so commands work from any folder."""
    relative: Path = WorkerSettings.model_fields["model_dir"].default
    for base in (_PACKAGE, PROJECT_ROOT):
        if (base / relative).is_dir():
            return base / relative
    return relative


DEFAULT_MODEL_DIR = default_model_dir()

existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)
out_dir = click.Path(file_okay=False, path_type=Path)
positive_int = click.IntRange(min=1)

model_option = click.option(
    "--model-dir",
    "--model",
    "model_dir",
    cls=Option,
    aliases=["--model"],
    type=existing_dir,
    default=DEFAULT_MODEL_DIR,
    show_default=True,
    envvar=ENV_PREFIX + "MODEL_DIR",
    show_envvar=True,
    help="Model folder (model.onnx, vocab.json, manifest.json).",
)

encoding_option = click.option(
    "--encoding",
    type=click.Choice(["auto", "utf-8", "latin-1"]),
    default="auto",
    show_default=True,
    help="Text encoding of the CSV files; auto reads UTF-8 when the bytes are valid UTF-8, "
    "else latin-1 (Sentiment140 as distributed).",
)


def setting_option(field: str, aliases: Sequence[str] = ()) -> Callable[[F], F]:
    """A flag of another command that means what the worker's setting ``field`` means: same
    name, default, bounds and ``SENTISTREAM_*`` variable (one source of truth:
    :class:`WorkerSettings`). ``aliases`` are older names kept working, not shown."""
    info = WorkerSettings.model_fields[field]
    return click.option(
        "--" + field.replace("_", "-"),
        *aliases,
        field,
        cls=Option,
        aliases=aliases,
        type=click_type(info),
        default=info.default,
        show_default=True,
        envvar=ENV_PREFIX + field.upper(),
        show_envvar=True,
        help=info.description,
    )


def connection_options(command: F) -> F:
    """Every connection setting (:class:`KafkaConnection`: servers, TLS, SASL) as the worker's
    flags and variables; the command receives them as one ``connection`` argument. Put it
    right above the ``def``."""
    return connection_options_with({})(command)


def connection_options_with(defaults: Mapping[str, Any]) -> Callable[[F], F]:
    """:func:`connection_options` with other defaults shown by ``--help`` (``None``: no
    default shown; the setting's own applies)."""
    names = set(KafkaConnection.model_fields)

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flags = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
            kwargs["connection"] = build_settings(KafkaConnection, flags)
            return command(*args, **kwargs)

        options = settings_options(KafkaConnection, ENV_PREFIX, defaults=defaults)
        return options(wrapper)  # type: ignore[return-value]

    return decorate


def log(message: str) -> None:
    """A line for the person at the terminal (stderr: stdout carries the command's output)."""
    click.echo(message, err=True)
