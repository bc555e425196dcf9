"""Repository paths and the data-root rule (one place; notebooks never use ``../..``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "results"
FIGURES = REPO_ROOT / "figures"
RUNS = Path(os.environ.get("R2MR_RUNS_DIR") or REPO_ROOT / "runs")  # cached training runs (git-ignored)
DATA_ENV = "R2MR_DATA_DIR"


def data_root(cli_value: str | os.PathLike | None = None) -> Path:
    """Data root: ``--data-dir`` if given, else ``$R2MR_DATA_DIR``, else ``./data``."""
    if cli_value:
        return Path(cli_value).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path("data")


def data_root_source(cli_value: str | os.PathLike | None = None) -> str:
    """Which rule chose the data root (for error messages)."""
    if cli_value:
        return "--data-dir"
    if os.environ.get(DATA_ENV):
        return f"${DATA_ENV}"
    return "the default ./data"
