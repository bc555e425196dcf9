"""Rebuild the MMRec-format TikTok folder from the public DiffMM release (``Datasets/tiktok/`` of HKUDS/DiffMM).

The release holds ``trnMat.pkl``, ``valMat.pkl`` and ``tstMat.pkl`` (pickled SciPy sparse user × item
matrices, any non-zero entry is an interaction) and ``image_feat.npy``, ``audio_feat.npy`` (float16, one row
per item). :func:`convert_tiktok` writes ``tiktok.inter`` (userID, itemID, x_label = 0 train / 1 valid /
2 test, rows sorted by user then item) and the two feature files as float16, which is the folder this
package's TikTok results were computed on (same fingerprint, see :func:`r2mr.runs.experiment.fingerprint`).

The pickles are read with a restricted unpickler that resolves only the SciPy sparse matrix classes and
the NumPy array machinery they need: a pickle that names anything else is refused, never executed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.errors import DataError

SPLIT_FILES = (("trnMat.pkl", 0), ("valMat.pkl", 1), ("tstMat.pkl", 2))
FEATURES = ("image_feat.npy", "audio_feat.npy")
_SPARSE = {"coo_matrix", "csr_matrix", "csc_matrix", "coo_array", "csr_array", "csc_array"}


def _numpy_allowed() -> dict[tuple[str, str], object]:
    try:  # NumPy 2 moved numpy.core to numpy._core; old pickles name the former
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    import codecs

    found = {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar,
             "_frombuffer": getattr(numeric, "_frombuffer", None)}
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                              ("_codecs", "encode"): codecs.encode}
    for mod in ("numpy.core", "numpy._core"):
        for name, obj in found.items():
            if obj is not None:
                allowed[(f"{mod}.{'numeric' if name == '_frombuffer' else 'multiarray'}", name)] = obj
    return allowed


class _SparseUnpickler(pickle.Unpickler):
    """Resolves SciPy sparse matrices and NumPy arrays only."""

    def __init__(self, fh, path: Path) -> None:
        super().__init__(fh)
        self.path, self.allowed = path, _numpy_allowed()

    def find_class(self, module: str, name: str) -> object:
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE:
            return getattr(sp, name)
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise DataError(f"{self.path}: the pickle refers to {module}.{name}, which a sparse matrix does not need; "
                        f"refused (not loaded); fix: use the files of the DiffMM release")


def load_sparse_pickle(path: Path) -> sp.coo_matrix:
    """A pickled SciPy sparse matrix as a binary float32 COO matrix (non-zero entries -> 1)."""
    if not path.is_file():
        raise DataError(f"{path}: not found; fix: copy {path.name} from the DiffMM release's Datasets/tiktok/")
    try:
        with open(path, "rb") as fh:
            obj = _SparseUnpickler(fh, path).load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable pickle is one data error
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {str(exc)[:100]}); "
                        f"fix: download the file again") from None
    if not sp.issparse(obj) or obj.ndim != 2:
        raise DataError(f"{path}: expected a SciPy sparse user x item matrix, got {type(obj).__name__}; "
                        f"fix: use the files of the DiffMM release")
    return (sp.coo_matrix(obj) != 0).astype(np.float32).tocoo()


def release_interactions(src: Path) -> tuple[pd.DataFrame, tuple[int, int]]:
    """The three splits as one table (userID, itemID, x_label) sorted by user then item, and the shape."""
    parts, shape = [], None
    for fname, label in SPLIT_FILES:
        m = load_sparse_pickle(src / fname)
        if shape is not None and m.shape != shape:
            raise DataError(f"{src / fname}: shape {m.shape} differs from trnMat.pkl's {shape}; "
                            f"fix: the three matrices must come from the same release")
        shape = m.shape
        parts.append(pd.DataFrame({"userID": m.row.astype(np.int64), "itemID": m.col.astype(np.int64),
                                   "x_label": np.full(m.nnz, label, dtype=np.int64)}))
    df = pd.concat(parts, ignore_index=True).sort_values(["userID", "itemID"], kind="stable", ignore_index=True)
    dup = df.duplicated(["userID", "itemID"])
    if dup.any():
        u, i = df.loc[dup, ["userID", "itemID"]].iloc[0]
        raise DataError(f"{src}: {int(dup.sum())} (user, item) pair(s) in more than one split, first ({u}, {i}); "
                        f"fix: use the files of the DiffMM release")
    assert shape is not None
    return df, shape


def convert_tiktok(src: Path, out: Path) -> Path:
    """Write the MMRec-format folder ``out`` (created; must not exist yet) from the release folder ``src``."""
    src, out = Path(src), Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: already exists and is not empty; "
                        f"fix: remove it or write to another data root (--data-dir)")
    df, (n_users, n_items) = release_interactions(src)
    if df.userID.max() + 1 != n_users or df.itemID.max() + 1 != n_items:
        raise DataError(f"{src}: the last user or item of the {n_users} x {n_items} matrices has no interaction, "
                        f"which an .inter file cannot express; fix: use the files of the DiffMM release")
    feats = {}
    for fname in FEATURES:
        path = src / fname
        if not path.is_file():
            raise DataError(f"{path}: not found; fix: copy {fname} from the DiffMM release's Datasets/tiktok/")
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 2 or arr.shape[0] != n_items or not np.issubdtype(arr.dtype, np.floating):
            raise DataError(f"{path}: expected a float matrix with {n_items} rows, got {arr.dtype} {arr.shape}; "
                            f"fix: use the files of the DiffMM release")
        feats[fname] = arr.astype(np.float16)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        df.to_csv(stage / f"{out.name}.inter", sep="\t", index=False)
        for fname, arr in feats.items():
            np.save(stage / fname, arr)
        os.replace(stage, out)  # atomic; replaces at most an empty folder
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return out


# ---- command line (``python -m r2mr data convert``; its arguments are declared in r2mr/cli/main.py) -------------------

def main(args: argparse.Namespace) -> int:
    from ..core.paths import data_root
    from .mmrec import check_dataset
    from .stats import format_log

    root = data_root(args.data_dir)
    out = convert_tiktok(Path(args.src), root / args.name)
    print(format_log(check_dataset(args.name, root)))
    print(f"wrote {out}")
    return 0
