"""The choices that decide the token ids a model sees, and padding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["CLEANING_VERSION", "OOV_ID", "PAD_ID", "Side", "TextConfig", "pad", "pad_to_longest"]

#: Bumped whenever the text pipeline changes the tokens it returns; recorded in the manifest.
#: v3: tweet normalisation with markers, in a Hugging Face ``tokenizers`` pipeline
#: (``tokenizer.json``). v2: emoticon words and emoji in Python. v1: the notebook's cleaning.
CLEANING_VERSION = 3

PAD_ID = 0
OOV_ID = 1

Side = Literal["pre", "post"]


@dataclass(frozen=True)
class TextConfig:
    """Every choice that decides the token ids a model sees; stored in the manifest."""

    maxlen: int
    """Tweets longer than this many tokens are cut; batches are padded to at most this."""
    num_words: int
    """Vocabulary size including the padding (0) and out-of-vocabulary (1) ids."""
    padding: Side = "post"
    """Where padding zeros go. ``post`` lets a masked LSTM stop at each tweet's last token."""
    truncating: Side = "post"
    """Which end of an over-long tweet is cut."""
    cleaning_version: int = CLEANING_VERSION

    def __post_init__(self) -> None:
        if self.maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {self.maxlen}")
        if self.num_words < 3:
            raise ValueError(
                f"num_words must be at least 3 (pad, oov, one word), got {self.num_words}"
            )
        if self.padding not in ("pre", "post") or self.truncating not in ("pre", "post"):
            raise ValueError("padding and truncating must each be 'pre' or 'post'")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def pad(
    sequences: Sequence[Sequence[int]], length: int, padding: Side = "post"
) -> npt.NDArray[np.int32]:
    """Pad (with :data:`PAD_ID`) or cut every sequence to ``length``; returns ``(n, length)``."""
    out = np.full((len(sequences), length), PAD_ID, dtype=np.int32)
    for row, sequence in enumerate(sequences):
        ids = sequence[:length]
        if not ids:
            continue
        if padding == "post":
            out[row, : len(ids)] = ids
        else:
            out[row, -len(ids) :] = ids
    return out


def pad_to_longest(
    sequences: Sequence[Sequence[int]], maxlen: int, padding: Side = "post"
) -> npt.NDArray[np.int32]:
    """Pad a batch only as far as its longest sequence (never beyond ``maxlen``).

    With a masked model and post-padding the result for each row is the same as padding to
    ``maxlen``; the work saved is the padding's.
    """
    longest = max((len(ids) for ids in sequences), default=1)
    return pad(sequences, max(1, min(longest, maxlen)), padding)
