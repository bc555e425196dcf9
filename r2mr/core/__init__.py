"""Core layer: errors, names, paths, atomic file I/O, provenance and config rules (no torch at import)."""

__version__ = "0.4.9"  # the package version: pyproject.toml reads it from here
