"""Command line layer: parsers, commands and notebook execution (``python -m r2mr``)."""
