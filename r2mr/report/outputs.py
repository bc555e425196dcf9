"""Where a notebook writes and what it records: :class:`Outputs` (tables as CSV + Markdown with a provenance
footer, figures as PNG + PDF, a ``run.json`` listing; the files of a previous run that this one did not write
again are removed, so a results folder holds only its last run) and :func:`provenance` (data sets, devices,
variants, seeds, library versions, commit and date of the runs behind a table)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.atomic_io import git_commit, save_figure, write_json, write_table
from ..core.paths import REPO_ROOT, STAGE_ENV
from ..runs.notebook_runs import Run
from .curves import stop_rule_text

SCRATCH = REPO_ROOT / "scratch"  # default output root of a notebook's quick run (git-ignored)
LIBRARIES = ("torch", "numpy", "scipy", "scikit-learn", "pandas")  # the versions a run record carries


def staged(stage: Path, final: Path) -> Path:
    """Where a file or folder ``final`` (absolute) is written under the staging folder ``stage``."""
    return stage / final.relative_to(final.anchor)


class Outputs:
    """Where one notebook writes: ``<root>/results/<notebook>/<name>.{csv,md}`` and
    ``<root>/figures/<notebook>_<name>.{png,pdf}``. ``root`` ``None`` is the git-ignored ``scratch/`` (quick
    runs); ``run_all.sh`` passes the repository root, and with ``$R2MR_OUTPUT_STAGE`` set (by
    :mod:`r2mr.pipeline`) the files go to ``<stage>/<root as a relative path>/...`` instead, to be moved into
    ``root`` only when every notebook of the invocation succeeded (the listed paths are the final ones)."""

    def __init__(self, notebook: str, root: str | Path | None = None) -> None:
        self.notebook = notebook
        self.root = Path(root) if root else SCRATCH
        if not self.root.is_absolute():
            self.root = REPO_ROOT / self.root
        stage = os.environ.get(STAGE_ENV)
        self.write_root = staged(Path(stage), self.root) if stage else self.root
        self.results = self.write_root / "results" / notebook
        self.figures = self.write_root / "figures"
        self.written: list[Path] = []
        self.started = time.time()
        self.previous = self._previous_files()

    def _previous_files(self) -> list[Path]:
        """The files the previous run of this notebook under this root wrote (its ``run.json`` lists them)."""
        path = self.results / "run.json"
        if not path.is_file():
            return []
        try:
            files = json.loads(path.read_text()).get("files", [])
        except (OSError, ValueError):
            return []
        out = []
        for f in files:  # relative to the repository (see _rel), or to the root when it lies outside
            hits = [c for c in (REPO_ROOT / f, self.root / f) if c.parent in (self.results, self.figures)]
            out += hits[:1]
        return out

    def _rel(self, p: Path) -> str:
        p = self.root / p.relative_to(self.write_root)  # where the file is (or will be, when staged)
        try:
            return str(p.relative_to(REPO_ROOT))
        except ValueError:
            return str(p.relative_to(self.root))

    def table(self, df: pd.DataFrame, name: str, meta: dict[str, Any] | None = None, index: bool = True) -> str:
        stem = self.results / name
        write_table(df if index else df.set_index(df.columns[0]), stem, meta)
        self.written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
        return self._rel(stem.with_suffix(".csv"))

    def figure(self, fig: Any, name: str) -> str:
        stem = self.figures / f"{self.notebook}_{name}"
        save_figure(fig, stem)
        self.written += [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
        return self._rel(stem.with_suffix(".png"))

    def finish(self, params: dict[str, Any], runs: Sequence[Run] = ()) -> str:
        """Write ``run.json`` (parameters, commit, devices, seeds, date, wall time, files) and list the files."""
        info = {"notebook": self.notebook, "parameters": params, **provenance(runs),
                "wall_seconds": round(time.time() - self.started, 1),
                "files": [self._rel(p) for p in self.written]}
        path = self.results / "run.json"
        write_json(path, info)
        stale = [p for p in self.previous if p not in self.written and p.is_file()
                 and p.parent in (self.results, self.figures)]
        for p in stale:  # written by the previous run of this notebook (its run.json says so), not by this one
            p.unlink()
        lines = ["wrote:"] + [f"  {self._rel(p)}" for p in [*self.written, path]]
        return "\n".join(lines + [f"removed (previous run's, not written again): {self._rel(p)}" for p in stale])


def provenance(runs: Sequence[Run] = (), **extra: Any) -> dict[str, Any]:
    """Provenance for a table footer: data sets, devices, variants, seeds, ``extra``, the stop rule in words
    (:func:`r2mr.report.curves.stop_rule_text`, read from the finished runs' configs), commit and date."""
    done = [r for r in runs if r.ok]
    if runs:
        extra["stop rule"] = stop_rule_text([r.result for r in done])
    variants = sorted({str(r.result["config"]["variant"]) for r in done if "variant" in r.result.get("config", {})})
    out = {"data sets": ", ".join(dict.fromkeys(r.dataset for r in runs)) or extra.pop("datasets", ""),
           "device": "; ".join(sorted({r.result.get("device_name", r.result["device"]) for r in done})) or "n/a",
           "variant": ", ".join(variants) or "n/a",
           "seeds": ", ".join(str(s) for s in dict.fromkeys(r.seed for r in done)) or "n/a",
           "versions": versions_text(done), **extra, "commit": git_commit(),
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return out


def versions_text(runs: Sequence[Run]) -> str:
    """The library versions the runs recorded, e.g. ``torch 2.13.0+cpu, numpy 2.4.6, ...``; several values are
    joined with ``/``; a library no run recorded reads ``not recorded`` (records made before 0.2.0 carry
    torch only)."""
    parts = []
    for lib in LIBRARIES:
        seen = dict.fromkeys(str(r.result.get("versions", {}).get(lib) or (r.result.get("torch") if lib == "torch"
                                                                           else "")) for r in runs)
        seen.pop("", None)
        parts.append(f"{lib} {'/'.join(seen) or 'not recorded'}")
    return ", ".join(parts) if runs else "n/a"
