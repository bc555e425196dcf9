"""What an atomic ``run_all.sh`` invocation (:mod:`r2mr.cli.pipeline`) needs around papermill: the
environment's own kernel, and, once every notebook succeeded, moving what they staged into place. The staging
folder holds the executed copies at its top and the tables and figures under ``outputs/<absolute path of their
final place>`` (see :class:`r2mr.report.outputs.Outputs`).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..core.errors import ConfigError
from ..core.paths import DATA_ENV, REPO_ROOT
from ..core.processor import PORTABLE_KERNELS

KERNEL = "r2mr"  # the kernel scripts/ensure_env.sh installs into the environment (--sys-prefix)
SCRATCH_STAGING = "scratch/staging"  # an invocation's outputs wait here until every notebook has succeeded


def kernel_name() -> str:
    """The environment's ``r2mr`` kernel (where ``scripts/ensure_env.sh`` installs it: ``--sys-prefix``); a
    one-line ConfigError with the fix when it is not installed."""
    if not (Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json").is_file():
        raise ConfigError(f"the Jupyter kernel '{KERNEL}' is not installed in this environment ({sys.prefix}); "
                          f"fix: run `source scripts/ensure_env.sh`, or `python -m ipykernel install --sys-prefix "
                          f"--name {KERNEL}`")
    return KERNEL


def promote(stage: Path, executed: Sequence[Path], executed_dir: Path) -> list[Path]:
    """Move the staged tables and figures, then the executed copies (into ``executed_dir``), file by file (each
    replace atomic), with Ctrl-C held back until all are moved; remove the staging folder (ours). Returns the
    executed copies' new paths."""
    staged = stage / "outputs"
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for src in sorted(p for p in staged.rglob("*") if p.is_file()) if staged.is_dir() else []:
            _move(src, Path("/") / src.relative_to(staged))
        placed = []
        for p in executed:
            placed.append(executed_dir / p.name)
            _move(p, placed[-1])
        if staged.is_dir():
            shutil.rmtree(staged)
        if stage.is_dir() and not any(stage.iterdir()):
            stage.rmdir()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return placed


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError:  # another file system (an output root outside the repository): copy, then rename
        tmp = dst.with_name(f".{dst.name}.staged")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        src.unlink()


def replay_environment(runs: Path, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a notebook's default run whose checked outputs are compared (the replay in
    tests/test_notebooks.py and ``scripts/refresh_notebooks.py``, which writes what it expects): a fresh run
    cache ``runs``, the embedded synthetic set whatever ``R2MR_DATA_DIR`` says, the kernel's inline plots, one
    torch thread, and CPU kernels pinned to one code path on any x86 processor
    (:data:`r2mr.core.processor.PORTABLE_KERNELS`), so the expected numbers do not depend on the machine."""
    env = {k: v for k, v in base.items() if k not in (DATA_ENV, "MPLBACKEND")}
    env.update(R2MR_RUNS_DIR=str(runs), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **PORTABLE_KERNELS,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), base.get("PYTHONPATH")])))
    return env
