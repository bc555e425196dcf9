"""Finding data sets under the data root (see :mod:`r2mr.core.paths` for the rule): which are present, where one
is, why a run on it cannot start, and loading it by name. Nothing here writes: generating the embedded
synthetic set is the explicit :func:`ensure_synthetic`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.config import parse_list
from ..core.errors import ConfigError, DataError
from ..core.names import AMAZON, SYNTHETIC
from ..core.paths import DEFAULT_DATA, data_root, display_path
from .corrupt import base_name
from .mmrec import feature_files, how_to_get

log = logging.getLogger(__name__)



def _holds(root: Path, name: str) -> bool:
    return (root / name / f"{name}.inter").is_file()


def datasets_present(data_dir: str | Path | None = None) -> list[str]:
    """Names of the data sets under the data root (folders holding ``<name>/<name>.inter``), sorted."""
    root = data_root(data_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _holds(root, p.name))


def find_dataset_root(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The data root that holds ``name/``, or ``None``; ``synthetic`` may also be in the repository's ``data/``."""
    name = base_name(name)  # a corrupted variant (r2mr.data.corrupt) lives in its clean set's folder
    root = data_root(data_dir)
    if _holds(root, name):
        return root
    if name == SYNTHETIC and _holds(DEFAULT_DATA, name):
        return DEFAULT_DATA
    return None


def ensure_synthetic(data_dir: str | Path | None = None) -> Path:
    """The root holding the embedded synthetic set; generates it (deterministic default settings) into the
    repository's ``data/synthetic`` when neither the data root nor ``data/`` has it. Returns that root."""
    found = find_dataset_root(SYNTHETIC, data_dir)
    if found is not None:
        return found
    from .synth import write

    log.info("generating the embedded synthetic data set in data/%s", SYNTHETIC)
    write(DEFAULT_DATA / SYNTHETIC)
    return DEFAULT_DATA


def auto_datasets(data_dir: str | Path | None = None, present: Sequence[str] | None = None) -> list[str]:
    """What ``auto`` names: every data set under the data root (``present`` where the caller listed them
    already) and the embedded synthetic set (generated when absent), sorted: the sets of the committed tables
    wherever their data is present."""
    return sorted({*(datasets_present(data_dir) if present is None else present), SYNTHETIC})


def resolve_datasets(spec: str | Sequence[str], data_dir: str | Path | None = None) -> list[str]:
    """``"auto"``: :func:`auto_datasets`; else the list."""
    from ..core.config import parse_list

    names = parse_list(spec)
    return auto_datasets(data_dir) if names == ["auto"] else names


def table_datasets(names: Sequence[str], data_dir: str | Path | None = None) -> list[str]:
    """``names`` plus every Amazon set of the paper that is absent (its cells then read "not run")."""
    names = list(names)
    return names + [a for a in AMAZON if a not in names and find_dataset_root(a, data_dir) is None]


def missing_data_reason(name: str, data_dir: str | Path | None = None, needs_features: bool = False) -> str | None:
    """Why a run on ``name`` cannot start (``"not run: …"``), or ``None`` when the data is there."""
    root, name = find_dataset_root(name, data_dir), base_name(name)
    if root is not None:  # found: only its item features can be missing
        fix = how_to_get(name, root / name, features=True)
    else:
        fix = how_to_get(name, Path("data", name) if name == SYNTHETIC else data_root(data_dir) / name)
    if root is None:
        return f"not run: data set missing ({fix})"
    if needs_features and not feature_files(root / name):
        return f"not run: item features missing ({fix})"
    return None


def inventory(names: Sequence[str], data_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per data set: found or not, its feature matrices (modality and width) and how to get it."""
    rows = []
    for name in names:
        root = find_dataset_root(name, data_dir)
        feats = feature_files(root / name) if root else {}
        shapes = {m: np.load(p, mmap_mode="r").shape for m, p in feats.items()}
        rows.append({"data set": name, "found": "yes" if root else "no",
                     "item features": ", ".join(f"{m} {s[1]}-d" for m, s in shapes.items()) or "none",
                     "note": (missing_data_reason(name, data_dir) or "").removeprefix("not run: ")
                     or ("" if feats else "graph only: models that need item features cannot run")})
    return pd.DataFrame(rows).set_index("data set")


def load_dataset_named(name: str, data_dir: str | Path | None = None, features: bool = True) -> Any:
    """Load data set ``name`` from wherever :func:`find_dataset_root` finds it (a :class:`r2mr.data.Dataset`)."""
    from . import load_dataset

    root = find_dataset_root(name, data_dir)
    if root is None:
        raise DataError(missing_data_reason(name, data_dir).removeprefix("not run: "))
    return load_dataset(name, root, features=features)


def requested_datasets(spec: str | None, data_dir: str | Path | None = None, key: str = "--datasets") -> list[str]:
    """The data sets ``spec`` names (comma-separated; ``auto`` or none: :func:`auto_datasets`), each present
    under the data root (``synthetic`` may still have to be generated). A missing one
    is one ConfigError naming ``key``, the data root, what was found and the fix. Nothing is written."""
    present = datasets_present(data_dir)
    names = parse_list(spec) if spec else []
    names = auto_datasets(data_dir, present) if names in ([], ["auto"]) else names
    for name in names:
        if name != SYNTHETIC and find_dataset_root(name, data_dir) is None:
            reason = missing_data_reason(name, data_dir) or ""
            fix = reason[reason.index("(") + 1:-1] if "(" in reason else "check the name"
            raise ConfigError(f"{key} '{name}': no {name}/ under the data root {display_path(data_root(data_dir))}"
                              f" (found: {', '.join(present) or 'none'}); fix: {fix}, or drop it from {key}")
    return names
