"""The notebooks: anatomy checks (fast), the committed outputs against results/, then each notebook's default
run replayed under nbval in lax mode.

Collected by glob (every ``notebooks/NN_*.ipynb``), never from a hand-kept list. The committed notebooks carry
the outputs of the run whose numbers are in ``results/`` (``scripts/refresh_notebooks.py --publish``); a test
checks that they are that run's. The replay runs each notebook's default run (its ``injected-parameters`` cell
removed) and, in lax mode, compares only the cells marked ``# NBVAL_CHECK_OUTPUT`` (data statistics and the quick
run's metric tables, rounded to 3-4 decimals) with ``tests/fixtures/notebook_checks/NN_*.json``, so a library
change that alters a result fails here.

Time budget: each notebook's default (quick) run stays under 3 minutes on 2 CPU cores; all of them together
a few minutes. The replay uses a run cache that is fresh for the session (a cached run would hide a changed
result), one torch thread and CPU kernels pinned to one code path on any x86 processor (the expected outputs
were made that way, r2mr.cli.staging.replay_environment; ``scripts/refresh_notebooks.py``
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

from r2mr.cli.pipeline import CHECK_MARK, checked_outputs, default_run, missing_models, notebook_paths
from r2mr.cli.staging import replay_environment
from r2mr.core.paths import REPO_ROOT, RESULTS
from r2mr.report.notebook_setup import committed_parameters

NOTEBOOKS = notebook_paths()
CHECKS = REPO_ROOT / "tests" / "fixtures" / "notebook_checks"
NUMBER = re.compile(r"(?<![\w.])-?0\.(\d{3,})(?![\w.])")  # a printed number in (-1, 1) with 3+ decimals
SANITIZE = REPO_ROOT / "notebooks" / "nbval_sanitize.cfg"
ABSOLUTE = re.compile(r"(?<![\w.~:])/(home|root|tmp|work|Users|mnt|var|opt)/")
MAX_CODE_LINES = 15
MAX_TEACHING_LINES = 25  # a cell that starts with "# teaching cell" (a computation by hand, shown on purpose)


def test_notebooks_are_found() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == sorted(p.name[:2] for p in NOTEBOOKS)
    assert any(p.name.startswith("00_") for p in NOTEBOOKS)


def nb_json(path: Path) -> dict:
    return json.loads(path.read_text())


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
        limit = MAX_TEACHING_LINES if src.startswith("# teaching cell") else MAX_CODE_LINES
        assert len(src.splitlines()) <= limit, f"code cell longer than {limit} lines:\n{src}"
        assert not {"execution", "papermill", "ExecuteTime"} & set(c["metadata"]), "strip execution metadata"
        assert "def " not in src and "class " not in src, "logic belongs in r2mr/, not in a notebook"
        assert all(o["output_type"] != "error" for o in c["outputs"]), "committed with an error output"
    assert any(c["outputs"] for c in code), "commit the notebook with the outputs of the results run"
    assert any(CHECK_MARK in "".join(c["source"]) for c in code), "mark the contract cells"


def injected_parameters(nb: dict) -> dict:
    """The parameters of the run that made the committed outputs: the Markdown note that
    ``scripts/refresh_notebooks.py --publish`` writes in place of papermill's ``injected-parameters`` cell."""
    params = committed_parameters(nb)
    assert params, "publish the results run's executed copy (scripts/refresh_notebooks.py --publish)"
    return params


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_runs_its_defaults(path: Path) -> None:
    """No executable cell of a committed notebook sets output_root or points at results/: executed as
    committed, it writes to scratch/ only."""
    code = ["".join(c["source"]) for c in nb_json(path)["cells"] if c["cell_type"] == "code"]
    assert not any("injected-parameters" in c.get("metadata", {}).get("tags", [])
                   for c in nb_json(path)["cells"] if c["cell_type"] == "code")
    assigned = [ln for src in code[1:] for ln in src.splitlines() if re.match(r"\s*output_root\s*=", ln)]
    assert not assigned and not any("results/" in src for src in code[1:]), f"{path.name} writes into results/"
    assert re.search(r"^output_root = None", code[0], re.M), "the parameters cell's default must be None (scratch/)"


def output_text(outputs: list[dict]) -> str:
    parts = [o.get("text", "") if "text" in o else o.get("data", {}).get("text/plain", "") for o in outputs]
    return "".join("".join(p) for p in parts)


def table_values(folder: Path, decimals: int) -> set[str]:
    """Every number in ``folder``'s CSV tables, rounded to ``decimals``, as text (``-0.000`` as ``0.000``)."""
    import pandas as pd

    values: set[str] = set()
    for csv in folder.glob("*.csv"):
        frame = pd.read_csv(csv)
        for col in frame.select_dtypes("number"):
            values |= {f"{v:.{decimals}f}".replace("-0." + "0" * decimals, "0." + "0" * decimals)
                       for v in frame[col].dropna()}
    return values


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_are_the_results_run(path: Path) -> None:
    """The committed outputs come from the run that wrote results/<notebook>/: the same parameters, and every
    number in (-1, 1) with 3+ decimals (metrics, shares, AUCs) that a checked cell prints is a value of that
    folder's tables."""
    nb = nb_json(path)
    run = json.loads((RESULTS / path.stem / "run.json").read_text())
    given = {k: v for k, v in injected_parameters(nb).items() if k != "force_since"}
    assert given == {k: run["parameters"][k] for k in given}, f"{path.name}: not the run of results/{path.stem}"
    printed = [m for o in checked_outputs(nb) for m in NUMBER.finditer(output_text(o))]
    known = {d: table_values(RESULTS / path.stem, d) for d in {len(m.group(1)) for m in printed}}
    stray = [m.group(0) for m in printed if m.group(0).lstrip("-") not in known[len(m.group(1))]
             and m.group(0) not in known[len(m.group(1))]]
    assert not stray, f"{path.name}: printed numbers not in results/{path.stem}/*.csv: {stray[:10]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_results_folder_holds_only_its_last_run(path: Path) -> None:
    """results/<notebook>/ holds exactly the files its run.json lists (no stale tables of an earlier run)."""
    folder = RESULTS / path.stem
    listed = {Path(f).name for f in json.loads((folder / "run.json").read_text())["files"]
              if f.startswith(f"results/{path.stem}/")}
    assert {p.name for p in folder.iterdir()} - {"run.json"} == listed


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
def test_nbval_replay(path: Path, replay_root: Path, tmp_path: Path) -> None:
    if missing_models(path):
        pytest.skip(f"{path.name} needs model(s) {', '.join(missing_models(path))}, not registered here")
    nb = default_run(nb_json(path))
    expected = json.loads((CHECKS / f"{path.stem}.json").read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and CHECK_MARK in "".join(c["source"])]
    assert len(cells) == len(expected), f"refresh {CHECKS.name}/{path.stem}.json (scripts/refresh_notebooks.py)"
    for cell, outputs in zip(cells, expected):
        cell["outputs"] = outputs
    replay = tmp_path / path.name
    replay.write_text(json.dumps(nb))
    cmd = [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
           "--nbval-sanitize-with", str(SANITIZE), "--nbval-cell-timeout", "900", str(replay)]
    env = replay_environment(replay_root / "runs", os.environ)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"nbval failed for {path.name}:\n{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}"


# -- executing the committed notebooks as committed, in a clone ----------------------------------------------
FAST = ("00_a_method", "00_data")  # seconds each: in the default suite; the others are marked slow


def clone_repo(tmp_path: Path) -> Path:
    """A clone of the committed state (HEAD) of this repository."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True, timeout=300)
    return clone


def execute(clone: Path, name: str, datasets: str | None = None) -> None:
    """Execute ``notebooks/<name>.ipynb`` of the clone as committed (or with another ``datasets`` default)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(clone / "notebooks" / f"{name}.ipynb"), as_version=4)
    if datasets is not None:
        first = next(c for c in nb.cells if c.cell_type == "code")
        first.source = re.sub(r'^datasets = "[^"]*"', f'datasets = "{datasets}"', first.source, flags=re.M)
    env = {k: v for k, v in os.environ.items() if k not in ("R2MR_DATA_DIR", "R2MR_RUNS_DIR")}
    env.update(PYTHONPATH=str(clone), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(clone / "notebooks")}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)


def git_status(clone: Path) -> str:
    return subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("name", [pytest.param(p.stem, marks=() if p.stem in FAST else pytest.mark.slow)
                                  for p in NOTEBOOKS])
def test_executing_a_committed_notebook_changes_no_tracked_file(name: str, tmp_path: Path) -> None:
    clone = clone_repo(tmp_path)
    execute(clone, name)
    assert git_status(clone) == "", f"executing {name} as committed changed the clone:\n{git_status(clone)}"
    assert (clone / "scratch").is_dir() or name == "00_a_method"


def test_a_named_missing_data_set_is_one_error_line(tmp_path: Path) -> None:
    from nbclient.exceptions import CellExecutionError

    clone = clone_repo(tmp_path)
    with pytest.raises(CellExecutionError) as info:
        execute(clone, "00_data", datasets="synthetic,nosuch")
    text = str(info.value)
    assert "error: datasets 'nosuch': no nosuch/ under the data root" in text and "fix:" in text
    assert git_status(clone) == ""


def test_publishing_keeps_one_run_note() -> None:
    """The executed copy of a committed notebook carries the earlier run's note and papermill's injected cell:
    publishing it leaves one note, with the new run's parameters."""
    from r2mr.report.notebook_setup import COMMITTED_TAG, committed_note

    old = committed_note({"cells": [{"cell_type": "code", "metadata": {"tags": ["injected-parameters"]},
                                     "source": "# Parameters\nscale = 'quick'\n", "outputs": []}]}, "03_x")
    executed = {"cells": [{"cell_type": "code", "metadata": {"tags": ["injected-parameters"]},
                           "source": "# Parameters\nscale = 'converged'\n", "outputs": []}, *old["cells"]]}
    published = committed_note(executed, "03_x")
    notes = [c for c in published["cells"] if COMMITTED_TAG in c["metadata"].get("tags", [])]
    assert len(notes) == 1 and committed_parameters(published) == {"scale": "converged"}
