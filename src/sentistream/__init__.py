"""sentistream: a Kafka streaming sentiment classifier for tweets."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sentistream")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
