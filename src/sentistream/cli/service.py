"""The command for operators: the worker."""

from __future__ import annotations

from typing import Any

import click

from sentistream.cli.options import DEFAULT_MODEL_DIR
from sentistream.cli.settings_options import build_settings, settings_options
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

__all__ = ["worker"]


@click.command()
@settings_options(
    WorkerSettings,
    ENV_PREFIX,
    defaults={"model_dir": DEFAULT_MODEL_DIR},
    aliases={"model_dir": ["--model"], "input_topic": ["--topic"]},
)
def worker(**flags: Any) -> None:
    """Consume tweets from Kafka, label them with the ONNX model, publish the labels."""
    import logging

    settings = build_settings(WorkerSettings, flags)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # run_worker sets kafka-python's own logger level (quiet unless --log-level DEBUG).
    from sentistream.manifest import ManifestError
    from sentistream.worker.app.main import exit_process, run_worker

    try:
        code = run_worker(settings)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
    # Everything is closed and committed: skip the interpreter's slow module teardown.
    exit_process(code)
