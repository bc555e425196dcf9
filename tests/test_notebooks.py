"""The notebooks: anatomy checks (fast), then each committed notebook replayed under nbval in lax mode.

Collected by glob (every ``notebooks/NN_*.ipynb``), never from a hand-kept list. In lax mode nbval runs every
cell and compares only the cells marked ``# NBVAL_CHECK_OUTPUT`` (data statistics and the quick run's metric
tables, rounded to 4 decimals), so a library change that alters a result fails here.

Time budget: each notebook's default (quick) run stays under 3 minutes on 2 CPU cores; all of them together
a few minutes. The replay uses a run cache that is fresh for the session (a cached run would hide a changed
result), one torch thread (the committed outputs were made that way; ``scripts/refresh_notebooks.py``
regenerates them) and the embedded synthetic set, whatever ``R2MR_DATA_DIR`` says.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from r2mr.paths import REPO_ROOT
from r2mr.pipeline import missing_models, notebook_paths

NOTEBOOKS = notebook_paths()
SANITIZE = REPO_ROOT / "notebooks" / "nbval_sanitize.cfg"
ABSOLUTE = re.compile(r"(?<![\w.~:])/(home|root|tmp|work|Users|mnt|var|opt)/")
MAX_CODE_LINES = 15


def test_notebooks_are_found() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == sorted(p.name[:2] for p in NOTEBOOKS)
    assert any(p.name.startswith("00_") for p in NOTEBOOKS)


def nb_json(path: Path) -> dict:
    return json.loads(path.read_text())


def replay_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("R2MR_DATA_DIR", "MPLBACKEND")}  # kernel: inline plots
    env.update(R2MR_RUNS_DIR=str(tmp_path / "runs"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    return env


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_anatomy(path: Path) -> None:
    nb = nb_json(path)
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    first = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# ") and "Reproduces:" in first
    assert "parameters" in code[0]["metadata"].get("tags", []), "first code cell must be tagged 'parameters'"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "papermill" not in nb["metadata"], "strip papermill metadata (scripts/refresh_notebooks.py)"
    for c in code:
        src = "".join(c["source"])
        assert len(src.splitlines()) <= MAX_CODE_LINES, f"code cell longer than {MAX_CODE_LINES} lines:\n{src}"
        assert not {"execution", "papermill", "ExecuteTime"} & set(c["metadata"]), "strip execution metadata"
        assert "def " not in src and "class " not in src, "logic belongs in r2mr/, not in a notebook"
        assert all(o["output_type"] != "error" for o in c["outputs"]), "committed with an error output"
    assert any(c["outputs"] for c in code), "commit the notebook with the outputs of its default run"
    assert any("NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in code), "mark the contract cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_machine_paths(path: Path) -> None:
    text = path.read_text()
    assert not ABSOLUTE.search(text), f"absolute path in {path.name}: {ABSOLUTE.search(text).group(0)}"
    assert str(REPO_ROOT) not in text


@pytest.fixture(scope="session")
def replay_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh run cache for the whole session: notebooks that train the same run share it."""
    return tmp_path_factory.mktemp("nbval")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbval_replay(path: Path, replay_root: Path) -> None:
    if missing_models(path):
        pytest.skip(f"{path.name} needs model(s) {', '.join(missing_models(path))}, not registered here")
    cmd = [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env",
           "--nbval-sanitize-with", str(SANITIZE), "--nbval-cell-timeout", "900", str(path)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=replay_env(replay_root), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"nbval failed for {path.name}:\n{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}"
