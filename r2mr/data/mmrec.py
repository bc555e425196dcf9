"""MMRec-format data sets: ``<root>/<name>/<name>.inter`` plus every ``<modality>_feat.npy``.

The ``.inter`` file is tab-separated with a header and the columns ``userID``, ``itemID`` and ``x_label``
(0 train, 1 valid, 2 test); other columns are ignored. Ids must be 0-based and contiguous. Feature
matrices have one row per item id. Every problem is reported as one :class:`DataError` line.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.config_rules import max_feature_width
from ..core.errors import DataError
from ..core.names import AMAZON, SYNTHETIC

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # .inter files whose dropped rows were reported

COLUMNS = ("userID", "itemID", "x_label")
SPLITS = ("train", "valid", "test")
MODALITY_ORDER = ("text", "image", "audio")  # canonical order; any other modality follows alphabetically


@dataclass
class Split:
    """One split's interactions as parallel int64 arrays ``users`` and ``items`` (shape (E,))."""

    users: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def csr(self, n_users: int, n_items: int) -> sp.csr_matrix:
        """Binary (n_users, n_items) matrix with sorted column indices."""
        data = np.ones(len(self), dtype=np.float32)
        m = sp.csr_matrix((data, (self.users, self.items)), shape=(n_users, n_items))
        m.sort_indices()
        return m


@dataclass
class Dataset:
    """An MMRec data set in memory. ``features[m]`` is float32 of shape (n_items, d_m)."""

    name: str
    n_users: int
    n_items: int
    train: Split
    valid: Split
    test: Split
    features: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None
    dropped_cold: int = 0

    def split(self, name: str) -> Split:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    def train_csr(self) -> sp.csr_matrix:
        return self.train.csr(self.n_users, self.n_items)


def modality_sort_key(name: str) -> tuple[int, str]:
    return (MODALITY_ORDER.index(name), "") if name in MODALITY_ORDER else (len(MODALITY_ORDER), name)


def dataset_dir(root: Path, name: str) -> Path:
    return Path(root) / name


def read_inter(path: Path) -> pd.DataFrame:
    """Read and validate an ``.inter`` file; return its three columns as int64."""
    try:
        df = pd.read_csv(path, sep="\t", low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty; fix: re-download it or regenerate the data set") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable tab-separated file ({str(exc).splitlines()[0]}); "
                        f"fix: re-download it") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(map(str, df.columns))}); "
                        f"fix: the header must name userID, itemID and x_label, tab-separated")
    df = df[list(COLUMNS)]
    for col in COLUMNS:
        df[col] = _as_int(df[col], path, col)
    if len(df) == 0:
        raise DataError(f"{path}: no interactions; fix: re-download the file")
    _check_ids(df, path)
    bad = ~df["x_label"].isin([0, 1, 2])
    if bad.any():
        vals = sorted(df.loc[bad, "x_label"].unique().tolist())[:5]
        raise DataError(f"{path}: x_label must be 0 (train), 1 (valid) or 2 (test), found {vals} in "
                        f"{int(bad.sum())} row(s); fix: relabel those rows")
    dup = df.duplicated(["userID", "itemID"])
    if dup.any():
        u, i = df.loc[dup, ["userID", "itemID"]].iloc[0]
        raise DataError(f"{path}: {int(dup.sum())} duplicate (userID, itemID) pair(s), first ({u}, {i}); "
                        f"fix: keep one row per pair")
    return df


def _as_int(col: pd.Series, path: Path, name: str) -> pd.Series:
    num = pd.to_numeric(col, errors="coerce")
    ok = num.notna() & np.isfinite(num.astype(float)) & (num.astype(float) == np.round(num.astype(float)))
    if not ok.all():
        first = col[~ok].iloc[0]
        raise DataError(f"{path}: column {name} has {int((~ok).sum())} non-integer value(s), first '{first}' "
                        f"(row {int(np.flatnonzero(~ok.to_numpy())[0]) + 2}); fix: ids and labels must be integers")
    return num.astype(np.int64)


def _check_ids(df: pd.DataFrame, path: Path) -> None:
    for col in ("userID", "itemID"):
        ids = df[col].to_numpy()
        lo, hi, n = int(ids.min()), int(ids.max()), len(np.unique(ids))
        if lo != 0 or n != hi + 1:
            raise DataError(f"{path}: {col} must be 0-based and contiguous, found {n} distinct ids in [{lo}, {hi}]; "
                            f"fix: re-index the ids to 0..n-1")


def _check_width(path: Path) -> None:
    """Refuse a 2-D matrix with 0 columns or more than :func:`max_feature_width` columns (header only)."""
    with open(path, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise DataError(f"{path}: not a .npy file (no NumPy header); "
                            f"fix: save it with numpy.save or re-download it")
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape  # reads the header, maps no data
    except (ValueError, EOFError, OSError, zipfile.BadZipFile):
        return  # the full load below reports an unreadable file
    if len(shape) != 2:
        return
    width, limit = shape[1], max_feature_width()
    if width == 0:
        raise DataError(f"{path}: has 0 columns (no content); fix: re-extract the features or delete the file")
    if width > limit:
        raise DataError(f"{path}: has {width:,} columns, more than the limit of {limit:,} (memory and checkpoint "
                        f"size grow with it); fix: reduce the width (e.g. PCA), or lift the limit with "
                        f"R2MR_MAX_FEATURE_WIDTH={width}")


def load_feature(path: Path, n_items: int) -> np.ndarray:
    """Load one ``<modality>_feat.npy`` as float32 (n_items, d) and validate it."""
    _check_width(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npy array ({str(exc).splitlines()[0][:120]}); "
                        f"fix: re-download or regenerate the feature file") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        shape = getattr(arr, "shape", None)
        raise DataError(f"{path}: expected a 2-D matrix (n_items, dim), got shape {shape}; "
                        f"fix: save one row per item")
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{path}: expected a float matrix, got dtype {arr.dtype}; fix: save the features as floats")
    if arr.shape[0] != n_items:
        raise DataError(f"{path}: has {arr.shape[0]} rows but the data set has {n_items} items; "
                        f"fix: one row per item id, in item-id order")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise DataError(f"{path}: {int((~finite).sum())} NaN/inf value(s), first in row {row}; "
                        f"fix: re-extract or impute those rows")
    return arr


def feature_files(folder: Path) -> dict[str, Path]:
    """``{modality: path}`` for every ``<modality>_feat.npy`` in ``folder``, in canonical order."""
    found = {p.name[: -len("_feat.npy")]: p for p in folder.glob("*_feat.npy") if p.is_file()}
    return {m: found[m] for m in sorted(found, key=modality_sort_key)}


def how_to_get(name: str, folder: str | Path, features: bool = False) -> str:
    """The "fix:" text for data set ``name`` that is absent from ``folder`` (or, ``features``, lacks its item
    features): one wording for every message that says how to get a data set."""
    if name in AMAZON:
        return f"run `python -m r2mr data download {name}`"
    if name == SYNTHETIC and not features:
        return f"run `python -m r2mr data synth --out {folder}`"
    if features:
        return f"put <modality>_feat.npy files (one row per item) in {folder}/"
    return f"put {name}.inter (and any <modality>_feat.npy) in {folder}/"


def load_dataset(name: str, root: str | Path, *, features: bool = True, root_source: str = "") -> Dataset:
    """Load and validate ``<root>/<name>``; drop valid/test rows of users without training rows. A corrupted
    variant ``<base>~<modality>-swap<percent>`` (:mod:`r2mr.data.corrupt`) loads ``<base>`` and applies its
    declared swap in memory (without ``features``: the base set renamed)."""
    from . import corrupt

    variant = corrupt.parse(name)
    if variant is not None:
        ds = load_dataset(variant.base, root, features=features, root_source=root_source)
        return corrupt.apply(ds, variant) if features else replace(ds, name=variant.name)
    folder = dataset_dir(Path(root), name)
    inter = folder / f"{name}.inter"
    if not folder.is_dir() or not inter.is_file():
        where = f" (data root from {root_source})" if root_source else ""
        get = how_to_get(name, Path(root) / name)
        raise DataError(f"{inter}: not found{where}; fix: {get}, or point --data-dir / R2MR_DATA_DIR "
                        f"at the folder that holds {name}/")
    df = read_inter(inter)
    n_users, n_items = int(df.userID.max()) + 1, int(df.itemID.max()) + 1
    train_df = df[df.x_label == 0]
    if len(train_df) == 0:
        raise DataError(f"{inter}: the train split (x_label 0) is empty; fix: label the training rows 0")
    warm = np.zeros(n_users, dtype=bool)
    warm[train_df.userID.to_numpy()] = True
    splits, dropped = {}, 0
    for label, split in enumerate(SPLITS):
        part = df[df.x_label == label]
        if label > 0:
            keep = warm[part.userID.to_numpy()]
            dropped += int((~keep).sum())
            part = part[keep]
        splits[split] = Split(part.userID.to_numpy(np.int64), part.itemID.to_numpy(np.int64))
    for label, split in enumerate(SPLITS[1:], start=1):
        if len(splits[split]) == 0:
            why = f" after dropping {dropped} row(s) of users with no training row" if dropped else ""
            raise DataError(f"{inter}: the {split} split (x_label {label}) is empty{why}; fix: label some rows "
                            f"{label} (MMRec's split holds out ~10% of each user's interactions for each)")
    if dropped and str(inter) not in _WARNED:  # once per file and process (a plan loads a set more than once)
        _WARNED.add(str(inter))
        log.warning("%s: dropped %d valid/test row(s) of users with no training row (as MMRec does)", inter, dropped)
    feats = {m: load_feature(p, n_items) for m, p in feature_files(folder).items()} if features else {}
    return Dataset(name, n_users, n_items, splits["train"], splits["valid"], splits["test"], feats, folder, dropped)


def check_dataset(name: str, root: str | Path, root_source: str = "") -> Dataset:
    """Load with every check on (features included)."""
    return load_dataset(name, root, features=True, root_source=root_source)
