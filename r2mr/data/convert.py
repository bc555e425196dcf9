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
from .mmrec import check_dataset

SPLIT_FILES = (("trnMat.pkl", 0), ("valMat.pkl", 1), ("tstMat.pkl", 2))
FEATURES = ("image_feat.npy", "audio_feat.npy")
MAX_DIM = 2**31 - 1  # users or items a release matrix may claim (ids are int32 in the .inter file)
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
    """A pickled SciPy sparse matrix as a binary float32 COO matrix (non-zero entries -> 1), validated first:
    unpickling bypasses SciPy's constructors, so the shape, the index arrays and their bounds are checked here
    (memory stays proportional to the file: nothing of the claimed shape's size is allocated)."""
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
    rows, cols, shape = _entries(obj, path)
    keys = np.unique(rows * shape[1] + cols)  # duplicate entries are one interaction
    rows, cols = keys // shape[1], keys % shape[1]
    return sp.coo_matrix((np.ones(len(keys), np.float32), (rows, cols)), shape=shape)


def _entries(obj: object, path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(row, column) int64 arrays of the non-zero entries and the shape of an unpickled COO, CSR or CSC matrix,
    each field checked; a forged one is a one-line DataError naming what is wrong."""
    def bad(problem: str) -> DataError:
        return DataError(f"{path}: not a valid sparse matrix ({problem}); fix: use the files of the DiffMM release")
    try:
        fmt, shape = obj.format, tuple(int(n) for n in obj.shape)
        data = np.asarray(obj.data)
        if fmt == "coo":
            major, minor = np.asarray(obj.row), np.asarray(obj.col)
        else:
            indptr, minor = np.asarray(obj.indptr), np.asarray(obj.indices)
    except Exception as exc:  # noqa: BLE001 - missing or odd fields of a forged state
        raise bad(f"its fields are unreadable: {type(exc).__name__}") from None
    if len(shape) != 2 or not all(0 < n <= MAX_DIM for n in shape):
        raise bad(f"shape {shape} is outside 1..{MAX_DIM} per side")
    arrays = [data, major, minor] if fmt == "coo" else [data, indptr, minor]
    if any(a.ndim != 1 for a in arrays) or any(a.dtype.kind not in "iu" for a in arrays[1:]):
        raise bad("its index arrays are not one-dimensional integer arrays")
    if data.dtype.kind not in "biuf":
        raise bad(f"its values have dtype {data.dtype}, not a number")
    if fmt != "coo":
        n_major = shape[0] if fmt == "csr" else shape[1]
        steps = np.diff(indptr)
        if len(indptr) != n_major + 1 or indptr[0] != 0 or (steps < 0).any() or indptr[-1] != len(minor):
            raise bad(f"its indptr (length {len(indptr)}) does not describe {n_major} rows of {len(minor)} entries")
        major = np.repeat(np.arange(n_major, dtype=np.int64), steps)
    if not len(major) == len(minor) == len(data):
        raise bad(f"its arrays differ in length ({len(major)}, {len(minor)}, {len(data)})")
    rows, cols = (major, minor) if fmt in ("coo", "csr") else (minor, major)
    for name, idx, n in (("row", rows, shape[0]), ("column", cols, shape[1])):
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise bad(f"a {name} index is outside 0..{n - 1}")
    keep = data != 0
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64), shape  # type: ignore[return-value]


def load_features(path: Path, n_items: int) -> np.ndarray:
    """A release feature file as float16 (n_items, width), checked before it is read in full (shape, dtype,
    width limit) and after the cast (every value finite: float16 holds |x| <= 65504)."""
    from ..core.config_rules import max_feature_width

    if not path.is_file():
        raise DataError(f"{path}: not found; fix: copy {path.name} from the DiffMM release's Datasets/tiktok/")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)  # the header only, until it is checked
    except Exception as exc:  # noqa: BLE001 - object arrays, a truncated or foreign file: one data error
        raise DataError(f"{path}: not a readable NumPy array ({type(exc).__name__}: {str(exc)[:100]}); "
                        f"fix: use the files of the DiffMM release") from None
    if arr.ndim != 2 or arr.shape[0] != n_items or arr.dtype.kind != "f" or arr.shape[1] > max_feature_width():
        raise DataError(f"{path}: expected a float matrix with {n_items} rows and at most {max_feature_width()} "
                        f"columns, got {arr.dtype} {arr.shape}; fix: use the files of the DiffMM release")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(arr, dtype=np.float16)
    bad = ~np.isfinite(out)
    if bad.any():
        r, c = (int(i[0]) for i in np.nonzero(bad))
        raise DataError(f"{path}: {int(bad.sum())} value(s) are not finite as float16 (first at row {r}, column "
                        f"{c}: {float(arr[r, c])!r}; float16 holds |x| <= 65504); fix: use the release's features, "
                        f"or scale them first")
    return out


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
    feats = {fname: load_features(src / fname, n_items) for fname in FEATURES}
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        folder = stage / out.name
        folder.mkdir()
        df.to_csv(folder / f"{out.name}.inter", sep="\t", index=False)
        for fname, arr in feats.items():
            np.save(folder / fname, arr)
        try:  # every check of a data set, before anything is moved into place
            check_dataset(out.name, stage)
        except DataError as exc:
            raise DataError(str(exc).replace(str(stage), str(out.parent))) from None
        os.replace(folder, out)  # atomic; replaces at most an empty folder
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # ours: the staged copy of a failed conversion, or empty
    return out


# ---- command line (``python -m r2mr data convert``; its arguments are declared in r2mr/cli/main.py) -----------------

def main(args: argparse.Namespace) -> int:
    from ..core.paths import data_root
    from .stats import format_log

    root = data_root(args.data_dir)
    out = convert_tiktok(Path(args.src), root / args.name)
    print(format_log(check_dataset(args.name, root)))
    print(f"wrote {out}")
    return 0
