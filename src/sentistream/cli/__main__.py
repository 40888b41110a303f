"""``python -m sentistream.cli``: what the ``sentistream`` script runs."""

from sentistream.cli import main

main()
