"""Where a notebook writes and what it records: :class:`Outputs` (tables as CSV + Markdown with a provenance
footer, figures as PNG + PDF, a ``run.json`` listing) and :func:`provenance` (data sets, devices, variants,
seeds, commit and date of the runs behind a table)."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.atomic_io import git_commit, save_figure, write_json, write_table
from ..core.paths import REPO_ROOT
from ..runs.notebook_runs import Run

SCRATCH = REPO_ROOT / "scratch"  # default output root of a notebook's quick run (git-ignored)


class Outputs:
    """Where one notebook writes: ``<root>/results/<notebook>/<name>.{csv,md}`` and
    ``<root>/figures/<notebook>_<name>.{png,pdf}``. ``root`` ``None`` is the git-ignored ``scratch/`` (quick
    runs); ``run_all.sh`` passes the repository root."""

    def __init__(self, notebook: str, root: str | Path | None = None) -> None:
        self.notebook = notebook
        self.root = Path(root) if root else SCRATCH
        if not self.root.is_absolute():
            self.root = REPO_ROOT / self.root
        self.results = self.root / "results" / notebook
        self.figures = self.root / "figures"
        self.written: list[Path] = []
        self.started = time.time()

    def _rel(self, p: Path) -> str:
        try:
            return str(p.relative_to(REPO_ROOT))
        except ValueError:
            return p.name

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
        return "\n".join(["wrote:"] + [f"  {self._rel(p)}" for p in [*self.written, path]])


def provenance(runs: Sequence[Run] = (), **extra: Any) -> dict[str, Any]:
    """Provenance for a table footer: data sets, devices, variants, seeds, commit and date."""
    done = [r for r in runs if r.ok]
    variants = sorted({str(r.result["config"]["variant"]) for r in done if "variant" in r.result.get("config", {})})
    out = {"data sets": ", ".join(dict.fromkeys(r.dataset for r in runs)) or extra.pop("datasets", ""),
           "device": "; ".join(sorted({r.result.get("device_name", r.result["device"]) for r in done})) or "n/a",
           "variant": ", ".join(variants) or "n/a",
           "seeds": ", ".join(str(s) for s in dict.fromkeys(r.seed for r in done)) or "n/a",
           **extra, "commit": git_commit(),
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return out
