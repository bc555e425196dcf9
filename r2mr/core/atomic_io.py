"""Atomic writers (temp file + rename) for JSON, CSV, Markdown, figures and torch checkpoints,
plus the run metadata stamped on every result (commit, device, versions, date)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Any, Iterator

from .errors import StorageError
from .paths import REPO_ROOT


def file_mode() -> int:
    """The mode a new file gets under the user's umask: ``0o666 & ~umask`` (e.g. 0o644 under umask 022)."""
    try:
        with open("/proc/self/status") as fh:  # Linux: read the umask without changing it
            mask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def write_failed(path: str | Path, exc: OSError) -> StorageError:
    """The one line for a file that could not be written: the path, the OS's words (e.g. "No space left on
    device") and the fix."""
    why = exc.strerror or str(exc) or type(exc).__name__
    return StorageError(f"{path}: cannot write ({why}); fix: free space on that disk or make the folder writable, "
                        f"or write elsewhere (--run-dir, R2MR_RUNS_DIR, --data-dir); the file as it was is kept")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it over ``path``.

    The file gets the user's umask mode (mkstemp alone would make it 0600); folders are made with it too. A
    failed write (disk full, read-only folder) leaves ``path`` as it was, removes the temporary file and raises
    a one-line :class:`StorageError`.
    """
    path = Path(path)
    # the name is known before the file exists, so that a Ctrl-C at any point leaves nothing behind (finally),
    # and is registered, so that a worker stopped by SIGTERM removes it too (remove_temporaries_on_sigterm)
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix or path.suffix}")
    _IN_FLIGHT.add(tmp)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_failed(path, exc) from None
    finally:
        _remove(tmp)
        _IN_FLIGHT.discard(tmp)


_IN_FLIGHT: set[str] = set()  # temporary files being written by this process (atomic_path)


def _remove(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Remove this process's temporary files, then die of the signal as before (the exit code stays -SIGTERM)."""
    for tmp in list(_IN_FLIGHT):
        _remove(tmp)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def remove_temporaries_on_sigterm() -> None:
    """In a worker process that its parent stops with SIGTERM (the process pool on Ctrl-C): a write under way
    leaves no temporary file behind. SIGTERM's default action ends the process without running ``finally``."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def markdown_frame(df: Any) -> Any:
    """A copy of ``df`` for the Markdown table: float columns holding only whole numbers (counts such as
    ``n seeds`` that became float beside a missing value) as integers, booleans as yes/no, missing as blank."""
    import numpy as np
    import pandas as pd

    out = df.copy()
    for col in out.columns:
        values = out[col].dropna()
        if len(values) and values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
            out[col] = out[col].map(lambda v: "" if pd.isna(v) else ("yes" if v else "no"))
        elif pd.api.types.is_float_dtype(out[col]) and len(values) and (values == values.round()).all():
            out[col] = out[col].map(lambda v: "" if pd.isna(v) else str(int(v)))
    return out.astype(object).where(out.notna(), None)  # None: blank under to_markdown(missingval="")


def write_table(df: Any, stem: str | Path, meta: dict[str, Any] | None = None, floatfmt: str = ".4f") -> None:
    """``df`` (pandas) to ``<stem>.csv`` (full precision) and ``<stem>.md`` (rounded, with a metadata footer)."""
    stem = Path(stem)
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=True)
    nested = getattr(df.index, "nlevels", 1) > 1  # a MultiIndex: its levels as columns, not as tuples
    md = markdown_frame(df.reset_index() if nested else df).to_markdown(floatfmt=floatfmt, missingval="",
                                                                         index=not nested)
    if meta:
        md += "\n\n" + "; ".join(f"{k}: {v}" for k, v in meta.items()) + "\n"
    write_text(stem.with_suffix(".md"), md + "\n")


def save_figure(fig: Any, stem: str | Path) -> None:
    """Save a matplotlib figure as ``<stem>.png`` and ``<stem>.pdf`` atomically."""
    for ext in (".png", ".pdf"):
        with atomic_path(Path(stem).with_suffix(ext)) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext[1:],
                        metadata={"CreationDate": None} if ext == ".pdf" else None)


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` through Python's file writes (serialised in memory first), so a full disk is an OSError
    with the OS's words, not the C++ writer's ``basic_ios::clear`` RuntimeError."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buf.getbuffer())


def load_torch(path: str | Path, map_location: Any = "cpu") -> Any:
    """Load a ``.pt`` file with ``weights_only=True`` (tensors, containers and plain values only), so a planted
    pickle cannot run code; a file that is not such a checkpoint is a ConfigError naming it."""
    import pickle

    import torch

    from .errors import ConfigError

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError:
        why = "it holds Python objects that weights-only loading refuses"
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: RuntimeError, EOFError, ...
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
    raise ConfigError(f"{path}: not a safe, readable torch file ({why}); fix: rerun with --restart "
                      f"(resume=False) to recompute it")


def result_path(result: dict[str, Any], field: str = "artifacts") -> Path | None:
    """The file a result names in ``field`` (``"artifacts"``, ``"per_user"``, ...), resolved against the run
    folder (``result["run_dir"]``, set by :mod:`r2mr.runs.experiment`); None if the result names none."""
    name = result.get(field)
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() or "run_dir" not in result else Path(result["run_dir"]) / path


def git_commit() -> str:
    """Short commit of the repository (with ``+dirty`` if files changed), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: Any) -> str:
    """Human-readable device, e.g. ``cuda (NVIDIA H100)`` or ``cpu (x86_64, 2 threads)``."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


VERSIONED = ("torch", "numpy", "scipy", "scikit-learn", "pandas")  # recorded in every run record


def versions() -> dict[str, str]:
    """Installed versions of the libraries whose numbers can change a result (``unknown`` if absent)."""
    from importlib import metadata

    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def run_metadata(device: Any) -> dict[str, Any]:
    """What a run record stores about the machine and code that made it (recorded, never keyed)."""
    import torch

    from .processor import processor_id

    return {"commit": git_commit(), "device_name": device_name(device), "cpu": processor_id(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "versions": versions(),
            "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
