"""The notebooks half of ``run_all.sh``: execute the notebooks in order with papermill, atomically per
invocation: executed copies, tables and figures are staged (``scratch/staging/<pid>/``, see :mod:`r2mr.cli.staging`)
and moved into ``results/`` and ``figures/`` only when every notebook succeeded; a failing notebook (a cell's error,
a dead kernel, a timeout) or Ctrl-C leaves the committed outputs as they were.

Each notebook declares its parameters in its first code cell (tagged ``parameters``); the pipeline passes the
ones it declares out of: ``datasets``, ``device``, ``seeds``, ``epochs``, ``scale``, ``force_since`` and
``output_root``. The data root reaches the kernels as ``$R2MR_DATA_DIR`` (absolute; see :mod:`r2mr.core.paths`), so
no machine path lands in an executed copy. The kernel is the environment's own ``r2mr``. The notebooks read the runs
from the store (trained before, :mod:`r2mr.cli.plan_commands`). Also here: :func:`clean_notebook`, which strips
execution metadata and absolute paths from a notebook before it is committed (nbval replays its outputs)."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..core.errors import ConfigError, R2MRError
from ..core.formatting import fmt_seconds
from ..core.paths import DATA_ENV, NO_TRAIN_ENV, REPO_ROOT, STAGE_ENV, display_path
from ..runs.plan_specs import EPOCH_CAPS, TUNE_SEEDS, parse_list
from .staging import KERNEL, SCRATCH_STAGING, kernel_name, promote

NOTEBOOKS = REPO_ROOT / "notebooks"
SMOKE_ROOT = "scratch/smoke"  # output root of --smoke runs (git-ignored), relative to the repository
FULL_SEEDS = "auto"  # r2mr.runs.plan.seeds_for: the declared seeds per data set and purpose


class NotebookFailed(R2MRError):
    """A notebook raised; the message names the notebook, the cell and the error."""


def notebook_paths(select: Sequence[str] | str | None = None, folder: Path = NOTEBOOKS) -> list[Path]:
    """The ordered notebooks ``NN_name.ipynb`` (by glob), optionally only those whose name starts with one of
    ``select`` (e.g. ``["00", "03"]``); an entry that matches nothing is an error. Without a notebooks folder
    (an installed package) the plan's declared notebooks stand in, so ``plan`` still works; ``run-all`` then
    refuses to start (:func:`run`)."""
    from ..runs.plan import NOTEBOOKS as PLANNED

    found = sorted(folder.glob("[0-9][0-9]_*.ipynb")) if folder.is_dir() else [folder / f"{n}.ipynb" for n in PLANNED]
    wanted = parse_list(select) if select is not None else []
    if not wanted:
        return found
    out = []
    for w in wanted:
        hits = [p for p in found if p.name.startswith(w)]
        if not hits:
            raise ConfigError(f"--notebooks: no notebook matches '{w}'; fix: use a prefix of "
                              f"{', '.join(p.stem for p in found)}")
        out += [h for h in hits if h not in out]
    return sorted(out)


def missing_models(path: Path) -> list[str]:
    """Models a notebook declares in its metadata (``"r2mr": {"requires_models": [...]}``) that this checkout
    does not register (e.g. a notebook written ahead of the model it studies)."""
    import json

    from ..models import MODELS

    meta = json.loads(Path(path).read_text()).get("metadata", {}).get("r2mr", {})
    return [m for m in meta.get("requires_models", []) if m not in MODELS]


@dataclass
class Invocation:
    """Everything one ``run_all.sh`` invocation passes to the notebooks, plus where the executed copies go."""

    datasets: list[str]
    data_dir: str | None  # data root (absolute), handed to the kernels as $R2MR_DATA_DIR; None: the default
    device: str
    seeds: list[int] | None  # None: auto (r2mr.runs.plan.seeds_for)
    epochs: int | None
    scale: str  # quick | full
    force_since: float
    output_root: str  # "." = the repository (results/, figures/); smoke runs use scratch/smoke
    notebooks: list[Path] = field(default_factory=list)
    tune: bool = True  # the tuning stage (r2mr.runs.plan); off for --smoke: main rows labelled untuned (defaults)
    train: bool = True  # False (--no-train): the kernels read runs back and train none ($R2MR_NO_TRAIN)

    def parameters(self) -> dict[str, Any]:
        seeds = "auto" if self.seeds is None else ",".join(map(str, self.seeds))
        return {"datasets": ",".join(self.datasets), "device": self.device, "seeds": seeds, "epochs": self.epochs,
                "scale": self.scale, "tune": self.tune, "force_since": self.force_since,
                "output_root": self.output_root}

    @property
    def executed_dir(self) -> Path:
        return REPO_ROOT / self.output_root / "results" / "executed"

    @property
    def scratch_dir(self) -> Path:
        return REPO_ROOT / SCRATCH_STAGING / f"{os.getpid()}"


def default_scale(device: str, smoke: bool = False) -> str:
    """converged on every device (the evidence: the committed tables, read from the archive where it has the
    runs); quick (the tutorial: R2MR at a reduced size, capped epochs) for --smoke."""
    return "quick" if smoke else "converged"


def describe(inv: Invocation) -> str:
    """What this invocation will do, in a few lines."""
    root = display_path(inv.data_dir) if inv.data_dir else "data"
    caps = EPOCH_CAPS.get(inv.scale, {})
    if inv.epochs is not None:
        epochs = str(inv.epochs)
    elif inv.scale == "converged":
        epochs = (f"early stopping on validation Recall@20 (patience 20), limit {caps['train']} epochs, which "
                  f"never binds (converged: evidence)")
    elif caps.get("train"):
        epochs = (f"at most {caps['tune']} per tuning point, {caps['train']} per other run (the {inv.scale} "
                  f"plan's caps: a tutorial, not evidence)")
    else:
        epochs = "model default (early stopping)"
    per_point = (f"{len(TUNE_SEEDS)} per tuning point (seeds {', '.join(map(str, TUNE_SEEDS))}, apart from the "
                 f"reporting seeds); the paper's ablations 5" if inv.scale == "converged" else "2 per tuning point")
    seeds = f"auto (r2mr.runs.plan: 5 per main row on synthetic and TikTok, else 3; {per_point})" \
        if inv.seeds is None else ", ".join(map(str, inv.seeds))
    setting = (f"device: {inv.device}; seeds: {seeds}; epochs: {epochs}; scale: {inv.scale}"
               + (" (R2MR at a reduced size; --scale full for the paper's sizes)" if inv.scale != "full" else "")
               + ("; --force: recomputing cached runs" if inv.force_since else ""))
    outputs = "results/, figures/" if inv.output_root == "." else inv.output_root + "/"
    lines = [f"data root: {root}  ->  data sets: {', '.join(inv.datasets)}", setting,
             f"outputs: {outputs}; executed notebooks: {display_path(inv.executed_dir)}/ (once all succeed)"]
    return "\n".join(lines)


class _Indent:
    """A text stream that indents what the kernel prints (progress lines) under the notebook's header."""

    def __init__(self, stream: TextIO, prefix: str = "    ") -> None:
        self.stream, self.prefix, self.bol = stream, prefix, True

    def write(self, text: str) -> int:
        for ch in text.splitlines(keepends=True):
            if self.bol:
                self.stream.write(self.prefix)
            self.stream.write(ch)
            self.bol = ch.endswith("\n")
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def declared_parameters(path: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(path)))


def execute(path: Path, inv: Invocation, stream: TextIO = sys.stdout, kernel: str = KERNEL) -> Path:
    """Run one notebook with the invocation's parameters into the staging folder; raise NotebookFailed."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out = inv.scratch_dir / path.name
    if out.resolve() == path.resolve():
        raise ConfigError(f"{path.name}: refusing to overwrite the committed notebook")
    out.parent.mkdir(parents=True, exist_ok=True)
    wanted = declared_parameters(path)
    params = {k: v for k, v in inv.parameters().items() if k in wanted}
    try:
        papermill.execute_notebook(str(path), str(out), parameters=params, kernel_name=kernel,
                                   cwd=str(path.parent), progress_bar=False, stdout_file=_Indent(stream),
                                   stderr_file=_Indent(sys.stderr))
    except Exception as exc:  # noqa: BLE001 - a cell's error, a dead kernel, a timeout: one line each
        cell = isinstance(exc, PapermillExecutionError)
        name, text = (exc.ename, exc.evalue or "") if cell else (type(exc).__name__, str(exc))
        first = (text.strip().splitlines() or [""])[0][:200]
        raise NotebookFailed(f"{path.name} failed{f' in cell In [{exc.exec_count}]' if cell else ''} ({name}: "
                             f"{first}); the executed copy is {display_path(out)}; the committed outputs are "
                             f"unchanged") from None
    finally:
        if out.is_file():
            _clean_file(out, keep_papermill=True)
    return out


@contextlib.contextmanager
def kernel_environment(inv: Invocation) -> Iterator[None]:
    """The kernels' environment while :func:`run` executes them (papermill starts each kernel with this process's
    environment): this checkout first on ``PYTHONPATH``, the data root, the inline plotting backend, papermill's
    own log quiet, ``$R2MR_NO_TRAIN`` (``--no-train``), ``$R2MR_OUTPUT_STAGE`` (the kernels' tables and figures
    go to the staging folder, see :class:`r2mr.report.outputs.Outputs`). Everything is put back on exit, so the
    caller's process is left as it was."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", DATA_ENV, "MPLBACKEND", STAGE_ENV, NO_TRAIN_ENV)}
    papermill_log = logging.getLogger("papermill")
    level = papermill_log.level
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [saved["PYTHONPATH"]])])
    if inv.data_dir:
        os.environ[DATA_ENV] = str(inv.data_dir)  # the kernels' data root (absolute)
    os.environ.pop("MPLBACKEND", None)  # kernels use their inline backend: figures stay in the executed copies
    papermill_log.setLevel(logging.WARNING)  # our own progress lines instead
    os.environ[STAGE_ENV] = str(inv.scratch_dir / "outputs")
    os.environ[NO_TRAIN_ENV] = "0" if inv.train else "1"
    try:
        yield
    finally:
        papermill_log.setLevel(level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run(inv: Invocation, stream: TextIO) -> list[Path]:
    absent = [p for p in inv.notebooks if not p.is_file()]
    if absent:
        raise ConfigError(f"{display_path(absent[0])}: notebook not found (run-all executes a source checkout's "
                          f"notebooks/); fix: run it from a clone of the repository")
    done = []
    for n, path in enumerate(inv.notebooks, 1):
        missing = missing_models(path)
        if missing:
            print(f"[{n}/{len(inv.notebooks)}] {path.name} skipped: needs model(s) {', '.join(missing)}, "
                  f"not registered in this checkout", file=stream, flush=True)
            continue
        print(f"[{n}/{len(inv.notebooks)}] {path.name} ...", file=stream, flush=True)
        t0 = time.time()
        done.append(execute(path, inv, stream))  # with the kernel run() checked
        took = fmt_seconds(time.time() - t0)
        print(f"[{n}/{len(inv.notebooks)}] {path.name} done in {took}", file=stream, flush=True)
    return done


def run(inv: Invocation, stream: TextIO = sys.stdout) -> list[Path]:
    """Execute the notebooks in order into the staging folder; stop at the first failure (NotebookFailed: the
    committed outputs untouched); when all succeeded, move the staged tables, figures and executed copies into
    place (:func:`r2mr.cli.staging.promote`)."""
    t_all = kernel_name() and time.time()  # the kernel is installed (else one line), then the clock
    shutil.rmtree(inv.scratch_dir, ignore_errors=True)  # an earlier invocation's with our pid (ours)
    with kernel_environment(inv):
        done = _run(inv, stream)
    placed = promote(inv.scratch_dir, done, inv.executed_dir)
    print(f"all {len(placed)} notebook(s) done in {fmt_seconds(time.time() - t_all)}; executed copies in "
          f"{display_path(inv.executed_dir)}/", file=stream, flush=True)
    return placed


# ---- committed-notebook hygiene ------------------------------------------------------------------------------

CELL_META_DROP = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")
CHECK_MARK = "NBVAL_CHECK_OUTPUT"  # nbval's lax mode compares only cells with this mark
PAPERMILL_PATH_KEYS = ("input_path", "output_path")


def clean_notebook(nb: Any, keep_papermill: bool = False) -> Any:
    """A copy of ``nb`` (nbformat node) without execution metadata: cell timings and papermill cell state
    dropped, kernelspec ``python3``, notebook-level papermill paths removed (parameters kept when
    ``keep_papermill``). Outputs and execution counts are kept."""
    nb = copy.deepcopy(nb)
    md = nb.setdefault("metadata", {})
    md["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    md.pop("widgets", None)
    if keep_papermill and "papermill" in md:
        for k in PAPERMILL_PATH_KEYS:
            md["papermill"].pop(k, None)
    else:
        md.pop("papermill", None)
    for cell in nb.get("cells", []):
        cmd = cell.setdefault("metadata", {})
        for k in CELL_META_DROP:
            if not (keep_papermill and k == "papermill"):
                cmd.pop(k, None)
    return nb


def default_run(nb: Any) -> Any:
    """``nb`` (nbformat node) without papermill's ``injected-parameters`` cell: the notebook's default run."""
    nb = copy.deepcopy(nb)
    nb["cells"] = [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    return nb


def checked_outputs(nb: Any) -> list[list[dict]]:
    """The outputs of each code cell of ``nb`` marked ``# NBVAL_CHECK_OUTPUT`` (what nbval compares), in order."""
    return [c["outputs"] for c in nb["cells"] if c["cell_type"] == "code" and CHECK_MARK in "".join(c["source"])]


def _clean_file(path: Path, keep_papermill: bool = False) -> None:
    import nbformat

    from ..core.atomic_io import write_text

    nb = nbformat.read(str(path), as_version=4)
    write_text(path, nbformat.writes(clean_notebook(nb, keep_papermill)) + "\n")
