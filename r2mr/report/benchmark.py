"""Notebook 04's R2MR benchmark rows: ``benchmarks/bench_r2mr.py`` run once per scale in a subprocess, its JSON
cached in the run store's ``benchmarks/`` folder."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..core.errors import DataError
from ..core.paths import REPO_ROOT, short_paths
from ..data.discovery import find_dataset_root, load_dataset_named

log = logging.getLogger(__name__)

BENCH_SCRIPT = REPO_ROOT / "benchmarks" / "bench_r2mr.py"


def benchmark(scales: Sequence[str], data_dir: str | Path | None = None, device: str = "cpu",
              force_since: float = 0.0, timeout: float = 3600.0) -> pd.DataFrame:
    """Rows of ``benchmarks/bench_r2mr.py`` (R2MR at the paper's sizes with random features of the real widths:
    seconds per epoch, per evaluation, per rewriter round, peak memory, Reviewer edge-wise vs dense), one per
    scale. ``clothing`` is the script's generated Clothing-sized graph; other scales are data sets found by
    :func:`r2mr.data.discovery.find_dataset_root`. Each scale's JSON is cached in ``runs/benchmarks/`` keyed by scale,
    data fingerprint and device, so a second call is free (``force_since`` recomputes older files)."""
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
        data = "generated" if scale == "clothing" else fingerprint(load_dataset_named(scale, data_dir, features=False))
        script = hashlib.sha1(BENCH_SCRIPT.read_bytes()).hexdigest()[:8]
        out = runs_root() / "benchmarks" / f"{scale}-{data}-{device}-{script}.json"
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
