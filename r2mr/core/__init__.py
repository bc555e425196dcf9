"""Core layer: errors, names, paths, atomic file I/O, provenance and config rules (no torch at import)."""
