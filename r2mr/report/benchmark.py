"""Notebook 04's R2MR benchmark rows: ``benchmarks/bench_r2mr.py`` run once per scale in a subprocess, its JSON
cached in the run store's ``benchmarks/`` folder; under ``run-all --no-train`` the committed measurement
(``results/04_efficiency/r2mr_benchmark.csv``) is read back instead of measuring here."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..core.errors import DataError
from ..core.paths import NO_TRAIN_ENV, REPO_ROOT, display_path, short_paths
from ..data.discovery import find_dataset_root, load_dataset_named

log = logging.getLogger(__name__)

BENCH_SCRIPT = REPO_ROOT / "benchmarks" / "bench_r2mr.py"
COMMITTED = REPO_ROOT / "results" / "04_efficiency" / "r2mr_benchmark.csv"
SIZE_COLUMNS = ("users", "items", "train_edges")  # what a committed row must share with the data set here


def committed_row(scale: str, sizes: dict[str, int] | None, device: str, path: Path | None = None) -> dict | None:
    """The committed benchmark row of ``scale`` (a dict of the CSV's columns), or None where there is none, or
    where its device kind or (for a data set, ``sizes`` not None) its users, items and training edges differ
    from the data set here: a row measured on other data is not read back. ``path``: default :data:`COMMITTED`."""
    path = COMMITTED if path is None else path
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    if not {"scale", "device", *SIZE_COLUMNS} <= set(table.columns):  # not a benchmark table: measure instead
        return None
    rows = table[(table["scale"] == scale) & table["device"].astype(str).str.startswith(device)]
    if sizes is not None:
        for column in SIZE_COLUMNS:
            rows = rows[rows[column] == sizes[column]]
    return rows.iloc[0].to_dict() if len(rows) == 1 else None


def _read_back(scale: str, sizes: dict[str, int] | None, device: str, force_since: float) -> dict | None:
    """Under ``--no-train`` (``$R2MR_NO_TRAIN`` = 1, no ``force_since``): the committed row, logged; else None."""
    if os.environ.get(NO_TRAIN_ENV) != "1" or force_since:
        return None
    row = committed_row(scale, sizes, device)
    if row is not None:
        log.info("benchmark of R2MR on %s: the committed measurement (%s), not measured here; run without --no-train "
                 "to measure on this machine", scale, display_path(COMMITTED))
    return row


def benchmark(scales: Sequence[str], data_dir: str | Path | None = None, device: str = "cpu",
              force_since: float = 0.0, timeout: float = 3600.0) -> pd.DataFrame:
    """Rows of ``benchmarks/bench_r2mr.py`` (R2MR at the paper's sizes with random features of the real widths:
    seconds per epoch, per evaluation, per rewriter round, peak memory, Reviewer edge-wise vs dense), one per
    scale. ``clothing`` is the script's generated Clothing-sized graph; other scales are data sets found by
    :func:`r2mr.data.discovery.find_dataset_root`. Each scale's JSON is cached in ``runs/benchmarks/`` keyed by scale,
    data fingerprint and device, so a second call is free (``force_since`` recomputes older files). Under
    ``--no-train`` a scale with no cached JSON reads the committed row of the same data instead (see
    :func:`committed_row`): rebuilding the tables measures nothing."""
    import hashlib
    import json
    import subprocess

    from ..runs.experiment import fingerprint
    from ..runs.store import runs_root

    if not BENCH_SCRIPT.is_file():
        raise DataError(f"{BENCH_SCRIPT.name}: benchmark script missing; fix: restore benchmarks/")
    rows = []
    for scale in scales:
        root = REPO_ROOT / "data" if scale == "clothing" else find_dataset_root(scale, data_dir)
        if root is None:
            continue
        ds = None if scale == "clothing" else load_dataset_named(scale, data_dir, features=False)
        data = "generated" if ds is None else fingerprint(ds)
        script = hashlib.sha1(BENCH_SCRIPT.read_bytes()).hexdigest()[:8]
        out = runs_root() / "benchmarks" / f"{scale}-{data}-{device}-{script}.json"
        sizes = None if ds is None else {"users": ds.n_users, "items": ds.n_items, "train_edges": len(ds.train)}
        if not out.is_file() and (row := _read_back(scale, sizes, device, force_since)) is not None:
            rows.append(row)
            continue
        if not out.is_file() or out.stat().st_mtime < force_since:
            log.info("benchmarking R2MR on %s (%s) ...", scale, device)
            cmd = [sys.executable, str(BENCH_SCRIPT), "--data-dir", str(root), "--device", device, "--scales", scale,
                   "--out", str(out)]
            proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                                  check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"benchmark on {scale} failed: {short_paths(proc.stderr.strip().splitlines()[-1])}")
        doc = json.loads(out.read_text())
        rows += [{**r, "scale": scale, "timer": doc["meta"].get("timer", "")} for r in doc["rows"]]
    return pd.DataFrame(rows)
