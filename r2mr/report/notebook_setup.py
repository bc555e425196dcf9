"""Notebook set-up and helpers: r2mr's log lines go to a log file (``scratch/logs/<notebook>.log``) and only
the lines of work being done (training progress, runs trained) and warnings to the notebook; one summary
line per batch of runs; the data sets a notebook names checked (one error line if one is missing); errors of
r2mr shown as one line; and the committed-run note that replaces papermill's injected parameters in a
committed notebook."""

from __future__ import annotations

import ast
import copy
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import __version__
from ..core.paths import REPO_ROOT, short_paths


class _ShortPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = short_paths(record.getMessage()), None
        return True


class _WorkOnly(logging.Filter):
    """Pass warnings, training progress and runs that were trained; drop runs read from the store, runs that
    cannot start and rewrite rounds (they go to the log file only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return (record.levelno >= logging.WARNING or record.name.startswith("r2mr.train")
                or ": trained in " in msg or msg.startswith("benchmark") or msg.startswith("generating"))


LOGS = REPO_ROOT / "scratch" / "logs"  # git-ignored
_log_path: Path | None = None


def _handler(stream: Any, name: str) -> logging.Handler:
    h = logging.StreamHandler(stream) if name == "stdout" else logging.FileHandler(stream, mode="w")
    h.setFormatter(logging.Formatter("%(message)s"))
    h.addFilter(_ShortPaths())
    h._r2mr_notebook = name  # type: ignore[attr-defined]
    return h


def _one_line_errors() -> None:
    """In IPython, an r2mr error (bad input: a missing data set, a bad parameter) prints as one line
    ``error: ...`` instead of a traceback; the cell still fails, so papermill and nbval stop there."""
    from ..core.errors import R2MRError

    ipython = sys.modules.get("IPython")  # loaded by the kernel; outside one there is nothing to set
    ip = ipython.get_ipython() if ipython is not None else None
    if ip is not None:
        ip.set_custom_exc((R2MRError,), lambda shell, etype, value, tb, tb_offset=None: print(f"error: {value}"))


def setup_notebook(notebook: str | None = None) -> str:
    """Route r2mr's log (INFO and above) to ``scratch/logs/<notebook>.log`` and, filtered to the work being
    done, to the notebook, with short paths; one-line r2mr errors; display defaults that never truncate a
    table. Returns a version line to print."""
    global _log_path
    import matplotlib

    logger = logging.getLogger("r2mr")
    for h in [h for h in logger.handlers if getattr(h, "_r2mr_notebook", None)]:
        logger.removeHandler(h)
        h.close()
    out = _handler(sys.stdout, "stdout")
    out.addFilter(_WorkOnly())
    logger.addHandler(out)
    if notebook:
        LOGS.mkdir(parents=True, exist_ok=True)
        _log_path = LOGS / f"{notebook}.log"
        logger.addHandler(_handler(_log_path, "file"))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    _one_line_errors()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.max_rows", 500)  # tables are shown per data set, whole
    pd.set_option("display.max_colwidth", 90)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "figure.figsize": (7.0, 3.6)})
    return f"r2mr {__version__}, {_versions()}, python {sys.version.split()[0]}"


def _versions() -> str:
    import scipy
    import sklearn
    import torch

    return (f"torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
            f"scikit-learn {sklearn.__version__}, pandas {pd.__version__}")


def run_summary(runs: Sequence[Any]) -> str:
    """One line for a batch of runs (:class:`r2mr.runs.notebook_runs.Run`): how many were read from the store,
    trained here and not run (by reason), and where the per-run lines are."""
    status = Counter("read from the store" if r.status == "cached" else r.status if r.ok else "not run"
                     for r in runs)
    reasons = Counter(r.status.removeprefix("not run: ").split(" (")[0] for r in runs if not r.ok)
    why = "; ".join(f"{n} {k}" for k, n in reasons.most_common())
    parts = [f"{status.get('read from the store', 0)} read from the store", f"{status.get('trained', 0)} trained",
             f"{status.get('not run', 0)} not run" + (f" ({why})" if why else "")]
    where = f"; one line per run in {short_paths(str(_log_path))}" if _log_path else ""
    return f"{len(runs)} runs: " + ", ".join(parts) + where


def check_datasets(spec: str, data_dir: str | Path | None = None) -> list[str]:
    """The data sets a notebook's ``datasets`` parameter names (``auto``: every set under the data root and
    the embedded synthetic set), each present under the data root; the embedded synthetic set is generated when
    absent. A missing one raises one ConfigError naming it and the fix, as ``run-all --datasets`` does."""
    from ..data.discovery import SYNTHETIC, ensure_synthetic, requested_datasets

    names = requested_datasets(spec, data_dir, key="datasets")
    if SYNTHETIC in names:
        ensure_synthetic(data_dir)
    return names


# -- the committed run's parameters ------------------------------------------------------------------------
COMMITTED_TAG = "committed-run-parameters"
_NOTE = ("**The outputs below come from the committed run** (`bash run_all.sh`), whose tables are in "
         "`results/{stem}/`. It ran with these parameters; this is a note, not code: running the notebook uses "
         "the defaults above and writes to `scratch/`.\n\n```python\n{code}\n```")


def committed_note(nb: Any, stem: str) -> Any:
    """A copy of ``nb`` whose papermill ``injected-parameters`` code cell is a Markdown note (tagged
    :data:`COMMITTED_TAG`) showing the same assignments: executing the committed notebook then uses its
    defaults instead of writing into ``results/``. An earlier run's note (the executed copy of a committed
    notebook carries it) is dropped: one note, the run's own."""
    nb = copy.deepcopy(nb)
    if any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]):
        nb["cells"] = [c for c in nb["cells"] if COMMITTED_TAG not in c.get("metadata", {}).get("tags", [])]
    for i, cell in enumerate(nb["cells"]):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            code = "".join(cell["source"]).replace("# Parameters\n", "").strip()
            nb["cells"][i] = {"cell_type": "markdown", "id": COMMITTED_TAG, "metadata": {"tags": [COMMITTED_TAG]},
                              "source": _NOTE.format(stem=stem, code=code)}
    return nb


def committed_parameters(nb: dict[str, Any]) -> dict[str, Any]:
    """The assignments of a committed notebook's run note (literals only); ``{}`` when it has none."""
    cells = [c for c in nb["cells"] if COMMITTED_TAG in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return {}
    code = "".join(cells[0]["source"]).split("```python\n", 1)[1].split("\n```", 1)[0]
    tree = ast.parse(code)
    return {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)}
