"""The ``sentistream`` command.

Commands are grouped by who runs them: :mod:`~sentistream.cli.model` (train, export, evaluate,
predict), :mod:`~sentistream.cli.kafka_tools` (produce, tail, create-topics),
:mod:`~sentistream.cli.service` (worker), :mod:`~sentistream.cli.relabel` (relabel) and
:mod:`~sentistream.cli.bench`. Each subcommand
imports what it needs when it runs, so ``sentistream worker`` and ``sentistream predict`` never
load TensorFlow.
"""

from __future__ import annotations

import os

import click

from sentistream import __version__
from sentistream.cli import bench, kafka_tools, model, relabel, service
from sentistream.cli.options import log
from sentistream.cli.settings_options import unknown_variables
from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

__all__ = ["cli", "main"]

_KNOWN_VARIABLES = {ENV_PREFIX + name.upper() for name in WorkerSettings.model_fields}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sentistream")
def cli() -> None:
    """Kafka streaming sentiment classifier for tweets (Sentiment140 LSTM on ONNX Runtime)."""
    for warning in unknown_variables(os.environ, ENV_PREFIX, _KNOWN_VARIABLES):
        log(warning)


for _command in (
    model.train,
    model.export,
    model.predict,
    model.evaluate,
    kafka_tools.produce,
    kafka_tools.tail,
    kafka_tools.create_topics,
    service.worker,
    relabel.relabel,
    bench.bench,
):
    cli.add_command(_command)


def main() -> None:
    cli()
