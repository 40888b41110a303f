"""A batch in a codec the install cannot read stops the worker with one line naming the codec
and the package that reads it (the packages are worker dependencies, so this is a broken
install, not a producer's fault)."""

from __future__ import annotations

import kafka.codec
import pytest
from kafka.errors import UnsupportedCodecError

from sentistream.worker.backends.kafka_python.source import CODEC_PACKAGES, codec_hint


@pytest.mark.parametrize("codec", sorted(CODEC_PACKAGES))
def test_the_line_names_the_codec_and_its_package(codec: str) -> None:
    line = codec_hint(UnsupportedCodecError(f"Libraries for {codec} compression codec not found"))
    assert f"compressed with {codec}" in line
    assert f"pip install {CODEC_PACKAGES[codec]}" in line


def test_every_codec_kafka_producers_use_is_readable_by_this_install() -> None:
    assert kafka.codec.has_gzip()
    assert kafka.codec.has_snappy()
    assert kafka.codec.has_lz4()
    assert kafka.codec.has_zstd()
