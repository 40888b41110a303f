"""The one text pipeline: tweet normalisation, tokenizer, encoding and padding.

The trainer, the exporter's parity check and the worker all use it, so a tweet becomes the
same token ids everywhere. Normalisation and vocabulary are one Hugging Face ``tokenizers``
pipeline (:class:`TweetTokenizer`), saved as ``tokenizer.json`` in the model folder; every
choice outside it (``maxlen``, padding, truncation) is a field of :class:`TextConfig`, written
into the manifest.

* :mod:`sentistream.text.normalize`: cleaning v3 (markers, emoticons, emoji) as regexes of
  the tokenizer's normaliser; :func:`clean` and :func:`tokenize` run it on one text.
* :mod:`sentistream.text.tokenizer`: :class:`TweetTokenizer` (train, save, load, encode).
* :mod:`sentistream.text.config`: :class:`TextConfig`, :func:`pad`, :func:`pad_to_longest`.
* :mod:`sentistream.text.legacy`: cleaning v2 in Python, kept only to measure against.
"""

from sentistream.text.config import (
    CLEANING_VERSION,
    OOV_ID,
    PAD_ID,
    Side,
    TextConfig,
    pad,
    pad_to_longest,
)
from sentistream.text.normalize import MARKERS, Steps, clean, tokenize
from sentistream.text.tokenizer import TOKENIZER_FILE, TokenizerKind, TweetTokenizer

#: The name the trainer and exporter have used so far; a :class:`TweetTokenizer`.
Vocabulary = TweetTokenizer

__all__ = [
    "CLEANING_VERSION",
    "MARKERS",
    "OOV_ID",
    "PAD_ID",
    "TOKENIZER_FILE",
    "Side",
    "Steps",
    "TextConfig",
    "TokenizerKind",
    "TweetTokenizer",
    "Vocabulary",
    "clean",
    "pad",
    "pad_to_longest",
    "tokenize",
]
