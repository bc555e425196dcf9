"""Repository paths and THE data-root rule (the only place that decides where data sets are read from).

The project root (:data:`REPO_ROOT`) is the source checkout this package sits in; an installed package (a wheel
in site-packages, no ``pyproject.toml`` beside it) has none, and its project root is the working directory at
import time: ``data/``, ``runs/``, ``results/`` and ``figures/`` are then read and written there, never in the
installation folder.

The data root is, in order: the value given (``--data-dir``, a notebook's ``data_dir``), else
``$R2MR_DATA_DIR``, else the repository's ``data/`` folder. A relative value is taken from the current working
directory, as for any path typed on a command line (``run_all.sh`` turns relative values into absolute ones
before it changes into the repository, and hands the root to the notebooks' kernels in ``$R2MR_DATA_DIR``).
The embedded synthetic set is the one exception, and it is written down here too: where the data root has no
``synthetic/``, it is read from (and generated into, by the explicit :func:`r2mr.data.discovery.ensure_synthetic`)
the repository's ``data/`` folder, so a read-only shared data root still gets it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, or site-packages for an installed package
IN_CHECKOUT = (SOURCE_ROOT / "pyproject.toml").is_file()
REPO_ROOT = SOURCE_ROOT if IN_CHECKOUT else Path.cwd().resolve()
RESULTS = REPO_ROOT / "results"
FIGURES = REPO_ROOT / "figures"
RUNS_ENV = "R2MR_RUNS_DIR"  # the run store's root (default <repo>/runs, git-ignored): see runs_root()
DATA_ENV = "R2MR_DATA_DIR"
NO_TRAIN_ENV = "R2MR_NO_TRAIN"  # "1" (run-all --no-train): the notebooks read runs back, never train one
STAGE_ENV = "R2MR_OUTPUT_STAGE"  # set by run_all.sh's pipeline: kernels write their outputs there (r2mr.outputs)
DEFAULT_DATA = REPO_ROOT / "data"  # also where the embedded synthetic set is generated


def data_root(value: str | os.PathLike | None = None) -> Path:
    """The data root (absolute): ``value``, else ``$R2MR_DATA_DIR``, else ``<repository>/data``; a relative
    ``value`` or variable is resolved against the current working directory."""
    raw = value or os.environ.get(DATA_ENV)
    if not raw:
        return DEFAULT_DATA
    return Path(os.path.abspath(Path(raw).expanduser()))



def data_root_source(value: str | os.PathLike | None = None) -> str:
    """Which rule chose the data root (for error messages)."""
    if value:
        return "--data-dir"
    if os.environ.get(DATA_ENV):
        return f"${DATA_ENV}"
    return "the default <repository>/data"


def repo_relative(path: str | os.PathLike | None, base: Path = REPO_ROOT) -> str | None:
    """``path`` relative to the repository when it can be (no absolute paths in executed notebooks)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    try:
        return os.path.relpath(p, base)
    except ValueError:  # another drive (Windows)
        return str(p)


def display_path(path: str | os.PathLike) -> str:
    """A path for messages: relative inside the repository, absolute elsewhere."""
    rel = repo_relative(path)
    return str(path) if rel is None or rel.startswith("..") else rel


def runs_root() -> Path:
    """The run store's root: ``$R2MR_RUNS_DIR`` (read at call time, not at import) or ``<repo>/runs``."""
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser() if env else REPO_ROOT / "runs"


_ABS_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/:'\"`]+/)+([^\s/:'\"`]+/[^\s/:'\"`]+)")


def short_paths(text: str) -> str:
    """Paths in the repository made relative; other absolute paths cut to ``…/<parent>/<name>``."""
    text = text.replace(str(REPO_ROOT) + "/", "")
    return _ABS_PATH.sub(lambda m: "…/" + m.group(1), text)


def strip_roots(text: str, *data_roots: str | os.PathLike | None) -> str:
    """``text`` with each data root written ``<data>`` and the repository ``.`` (messages kept in notebooks)."""
    roots = {str(p): "<data>" for p in data_roots if p} | {str(REPO_ROOT): "."}
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(root, roots[root])
    return text
