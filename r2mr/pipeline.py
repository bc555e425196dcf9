"""The one-command pipeline behind ``run_all.sh``: detect data and device, then execute the notebooks in order
with papermill, writing executed copies to ``results/executed/`` (the committed notebooks are never touched).

Each notebook declares its parameters in its first code cell (tagged ``parameters``); the pipeline passes the
ones it declares out of: ``datasets``, ``data_dir``, ``device``, ``seeds``, ``epochs``, ``scale``,
``force_since`` and ``output_root``. Training runs are cached by :func:`r2mr.experiment.train`, so a second
invocation re-executes the notebooks but reads every finished run back, and a killed one resumes.

Also here: :func:`clean_notebook`, which strips execution metadata and absolute paths from a notebook before
it is committed (outputs are kept; nbval replays them).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TextIO

from .errors import ConfigError, R2MRError
from .paths import DATA_ENV, REPO_ROOT
from .report import SYNTHETIC, locate, parse_list, parse_seeds, present, root_of

log = logging.getLogger(__name__)

NOTEBOOKS = REPO_ROOT / "notebooks"
SMOKE_ROOT = "scratch/smoke"  # output root of --smoke runs (git-ignored), relative to the repository
FULL_SEEDS = "999,1,2"


class NotebookFailed(R2MRError):
    """A notebook raised; the message names the notebook, the cell and the error."""


def notebook_paths(select: Sequence[str] | str | None = None, folder: Path = NOTEBOOKS) -> list[Path]:
    """The ordered notebooks ``NN_name.ipynb`` (by glob), optionally only those whose name starts with one of
    ``select`` (e.g. ``["00", "03"]``); an entry that matches nothing is an error."""
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
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

    from .models import MODELS

    meta = json.loads(Path(path).read_text()).get("metadata", {}).get("r2mr", {})
    return [m for m in meta.get("requires_models", []) if m not in MODELS]


def portable(path: str | Path | None, base: Path = REPO_ROOT) -> str | None:
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


def shown(path: Path) -> str:
    """A path for messages: relative inside the repository, absolute elsewhere."""
    rel = portable(path)
    return str(path) if rel is None or rel.startswith("..") else rel


@dataclass
class Plan:
    """Everything one invocation passes to the notebooks, plus where the executed copies go."""

    datasets: list[str]
    data_dir: str | None  # data root as given to the notebooks (relative to the repository where possible)
    device: str
    seeds: list[int]
    epochs: int | None
    scale: str  # quick | full
    force_since: float
    output_root: str  # "." = the repository (results/, figures/); smoke runs use scratch/smoke
    notebooks: list[Path] = field(default_factory=list)

    def parameters(self) -> dict[str, Any]:
        return {"datasets": ",".join(self.datasets), "data_dir": self.data_dir, "device": self.device,
                "seeds": ",".join(map(str, self.seeds)), "epochs": self.epochs, "scale": self.scale,
                "force_since": self.force_since, "output_root": self.output_root}

    @property
    def executed_dir(self) -> Path:
        return REPO_ROOT / self.output_root / "results" / "executed"


def resolve_device(device: str) -> str:
    from .train import resolve_device as _resolve

    return _resolve(device).type


def make_plan(*, datasets: str | None = None, data_dir: str | None = None, device: str = "auto",
              seeds: str | None = None, epochs: int | None = None, scale: str | None = None, smoke: bool = False,
              force: bool = False, notebooks: str | None = None, caller_cwd: str | None = None) -> Plan:
    """Resolve the options of ``run_all.sh`` into a :class:`Plan` (data detection and device detection)."""
    cwd = Path(caller_cwd or os.getcwd())
    raw = data_dir or os.environ.get(DATA_ENV) or None
    root = None if raw is None else (Path(raw).expanduser() if Path(raw).expanduser().is_absolute() else cwd / raw)
    if scale not in (None, "quick", "full"):
        raise ConfigError(f"--scale '{scale}' unknown; fix: use quick or full")
    names = parse_list(datasets) if datasets else (present(root) or [SYNTHETIC])
    if SYNTHETIC in names:
        locate(SYNTHETIC, root)  # generate the embedded set now (once), not inside a notebook
    dev = resolve_device(device)
    return Plan(datasets=names, data_dir=portable(root) if root else None, device=dev,
                seeds=parse_seeds(seeds or ("999" if smoke else FULL_SEEDS)),
                epochs=epochs if epochs is not None else (2 if smoke else None),
                scale=scale or default_scale(dev, smoke), force_since=time.time() if force else 0.0,
                output_root=SMOKE_ROOT if smoke else ".", notebooks=notebook_paths(notebooks))


def default_scale(device: str, smoke: bool = False) -> str:
    """quick for --smoke and on a CPU (R2MR at a reduced size, see r2mr.report.QUICK); full on a GPU."""
    return "quick" if smoke or device == "cpu" else "full"


def describe(plan: Plan) -> str:
    root = root_of(plan.data_dir)
    lines = [f"data root: {plan.data_dir or 'data'}  ->  data sets: {', '.join(plan.datasets)}"]
    for name in plan.datasets:
        where = locate(name, plan.data_dir, make_synthetic=False)
        if where is None:
            lines.append(f"  {name}: not found under the data root; its cells will read 'not run'")
        elif where != root:
            lines.append(f"  {name}: from ./data (generated embedded set)")
    lines.append(f"device: {plan.device}; seeds: {', '.join(map(str, plan.seeds))}; epochs: "
                 f"{plan.epochs if plan.epochs is not None else 'model default (early stopping)'}; scale: {plan.scale}"
                 + (" (R2MR at a reduced size; --scale full for the paper's sizes)" if plan.scale == "quick" else "")
                 + ("; --force: recomputing cached runs" if plan.force_since else ""))
    lines.append(f"outputs: {'results/, figures/' if plan.output_root == '.' else plan.output_root + '/'}; "
                 f"executed notebooks: {shown(plan.executed_dir)}/")
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


def execute(path: Path, plan: Plan, stream: TextIO = sys.stdout) -> Path:
    """Run one notebook with the plan's parameters into ``results/executed/``; raise NotebookFailed."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out = plan.executed_dir / path.name
    if out.resolve() == path.resolve():
        raise ConfigError(f"{path.name}: refusing to overwrite the committed notebook")
    out.parent.mkdir(parents=True, exist_ok=True)
    wanted = declared_parameters(path)
    params = {k: v for k, v in plan.parameters().items() if k in wanted}
    try:
        papermill.execute_notebook(str(path), str(out), parameters=params, kernel_name="python3",
                                   cwd=str(path.parent), progress_bar=False, stdout_file=_Indent(stream),
                                   stderr_file=_Indent(sys.stderr))
    except PapermillExecutionError as exc:
        first = exc.evalue.splitlines()[0] if exc.evalue else ""
        raise NotebookFailed(f"{path.name} failed in cell In [{exc.exec_count}] ({exc.ename}: {first}); "
                             f"the executed copy with the traceback is {shown(out)}") from None
    finally:
        if out.is_file():
            _clean_file(out, keep_papermill=True)
    return out


def run(plan: Plan, stream: TextIO = sys.stdout) -> list[Path]:
    """Execute the plan's notebooks in order; stop at the first failure (NotebookFailed)."""
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ.pop("MPLBACKEND", None)  # kernels use their inline backend: figures stay in the executed copies
    logging.getLogger("papermill").setLevel(logging.WARNING)  # our own progress lines instead
    done, t_all = [], time.time()
    for n, path in enumerate(plan.notebooks, 1):
        missing = missing_models(path)
        if missing:
            print(f"[{n}/{len(plan.notebooks)}] {path.name} skipped: needs model(s) {', '.join(missing)}, "
                  f"not registered in this checkout", file=stream, flush=True)
            continue
        print(f"[{n}/{len(plan.notebooks)}] {path.name} ...", file=stream, flush=True)
        t0 = time.time()
        execute(path, plan, stream)
        print(f"[{n}/{len(plan.notebooks)}] {path.name} done in {_fmt_secs(time.time() - t0)}", file=stream, flush=True)
        done.append(path)
    print(f"all {len(done)} notebook(s) done in {_fmt_secs(time.time() - t_all)}", file=stream, flush=True)
    return done


def _fmt_secs(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


# ---- committed-notebook hygiene ------------------------------------------------------------------------------

CELL_META_DROP = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")
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


def _clean_file(path: Path, keep_papermill: bool = False) -> None:
    import nbformat

    from .results import write_text

    nb = nbformat.read(str(path), as_version=4)
    write_text(path, nbformat.writes(clean_notebook(nb, keep_papermill)) + "\n")
