"""`sentistream train`'s flags, written out for click, against the dataclasses the trainer runs."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from sentistream.cli import cli


def test_train_flags_default_to_what_the_trainer_and_the_network_declare() -> None:
    """The flags repeat TrainConfig's and ModelConfig's defaults (click needs them to show in
    --help); a default changed in one place only would make `sentistream train` and
    `train()` train different networks."""
    from sentistream.trainer.model import ModelConfig
    from sentistream.trainer.train import TrainConfig

    declared = {
        f.name: f.default
        for config in (TrainConfig, ModelConfig)
        for f in fields(config)
        if f.default is not MISSING
    }
    flags = {p.name: p.default for p in cli.commands["train"].params if p.name in declared}
    flags["classes"] = tuple(str(flags["classes"]).split(","))
    assert flags == {name: declared[name] for name in flags}
    # Every network setting a person may want to change has a flag.
    assert set(flags) >= {f.name for f in fields(ModelConfig)} - {
        "vocab_size",  # the vocabulary's size, from --num-words
        "num_labels",  # from --classes
        "mask_zero",  # the serving contract (padding is masked), not a choice
    }


def test_every_train_flag_reaches_the_config_the_trainer_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sentistream.trainer import train as trainer
    from sentistream.trainer.model import ModelConfig

    seen: list[trainer.TrainConfig] = []

    def run_training(config: trainer.TrainConfig, log: Any) -> Any:
        seen.append(config)
        return SimpleNamespace(epochs_run=1, duration_seconds=1.0, out=config.out)

    monkeypatch.setattr(trainer, "train", run_training)
    data = tmp_path / "a.csv"
    data.write_text('"0","1","d","q","u","a tweet"\n', encoding="latin-1")
    flags = [
        *("--data", f"{data}:0.5", "--out", str(tmp_path / "out")),
        *("--classes", "positive,negative", "--lstm-units", "7", "--no-glove"),
        *("--maxlen", "12", "--class-weight", "none", "--recurrent-dropout", "0.1"),
    ]
    result = CliRunner().invoke(cli, ["train", *flags])
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert (config.sources[0].path, config.sources[0].weight) == (data, 0.5)
    assert config.classes == ("negative", "positive")
    assert (config.maxlen, config.class_weight, config.glove) == (12, "none", False)
    assert config.out == tmp_path / "out"
    network = {f.name for f in fields(ModelConfig)}
    assert set(config.model) <= network
    assert config.model["lstm_units"] == 7
    assert config.model["recurrent_dropout"] == 0.1
    assert config.model["bidirectional"] is True
