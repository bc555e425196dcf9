"""Notebook set-up: log r2mr's progress lines (per run and per N epochs of training) into the notebook with
short paths, and quiet display defaults."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pandas as pd

from ..core import __version__
from ..core.paths import short_paths


class _ShortPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = short_paths(record.getMessage()), None
        return True


def setup_notebook() -> str:
    """Log r2mr's progress lines (INFO and above: one per run, per N training epochs and per rewrite round) to
    the notebook with short paths, quiet display defaults; returns a version line to print."""
    import matplotlib
    import torch

    logger = logging.getLogger("r2mr")
    if not any(getattr(h, "_r2mr_notebook", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(message)s"))
        h.addFilter(_ShortPaths())
        h._r2mr_notebook = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.setLevel(logging.INFO)  # progress: one line per run, per N training epochs, per rewrite round
    logger.propagate = False
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    pd.set_option("display.max_colwidth", 90)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "figure.figsize": (7.0, 3.6)})
    return (f"r2mr {__version__}, torch {torch.__version__}, numpy {np.__version__}, pandas {pd.__version__}, "
            f"python {sys.version.split()[0]}")
