"""`sentistream train`'s flags, written out for click, against the dataclasses the trainer runs."""

from __future__ import annotations

from dataclasses import MISSING, fields

from sentistream.cli import cli


def test_train_flags_default_to_what_the_trainer_and_the_network_declare() -> None:
    """The flags repeat TrainConfig's and ModelConfig's defaults (click needs them to show in
    --help); a default changed in one place only would make `sentistream train` and
    `train()` train different networks."""
    from sentistream.trainer.model import ModelConfig
    from sentistream.trainer.train import TrainConfig

    # TrainConfig last: its partial_labels is the flag's (ModelConfig's only says how
    # build_model compiles when called on its own).
    declared = {
        f.name: f.default
        for config in (ModelConfig, TrainConfig)
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
        "partial_labels",  # TrainConfig's --partial-labels (the targets carry the class mask)
    }
