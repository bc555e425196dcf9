"""Data-set statistics in the layout of the official log: users, items, interactions, averages, sparsity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .mmrec import SPLITS, Dataset


def _row(users: np.ndarray, items: np.ndarray, n_users: int | None = None, n_items: int | None = None) -> dict:
    nu = n_users if n_users is not None else len(np.unique(users))
    ni = n_items if n_items is not None else len(np.unique(items))
    e = len(users)
    return {"users": nu, "items": ni, "interactions": e,
            "avg_per_user": e / max(nu, 1), "avg_per_item": e / max(ni, 1),
            "sparsity": 1.0 - e / max(nu * ni, 1)}


def statistics(ds: Dataset) -> pd.DataFrame:
    """One row per split (``all``, ``train``, ``valid``, ``test``).

    ``all`` counts every user and item id; a split counts the distinct users and items it contains,
    as the official log does (e.g. Clothing train: 39,387 users, 23,020 items, sparsity 99.97824%).
    """
    users = np.concatenate([ds.split(s).users for s in SPLITS])
    items = np.concatenate([ds.split(s).items for s in SPLITS])
    rows = {"all": _row(users, items, ds.n_users, ds.n_items)}
    for s in SPLITS:
        sp = ds.split(s)
        rows[s] = _row(sp.users, sp.items)
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "split"
    return df


def format_log(ds: Dataset) -> str:
    """The statistics as text lines, e.g. ``train  users 39,387  items 23,020  inters 197,338 ... 99.97824%``."""
    lines = [f"{ds.name}: {ds.n_users:,} users, {ds.n_items:,} items, modalities: "
             + (", ".join(f"{m} {f.shape[1]}-d" for m, f in ds.features.items()) or "none")]
    for split, r in statistics(ds).iterrows():
        lines.append(f"{split:<6} users {int(r['users']):>9,}  items {int(r['items']):>8,}  "
                     f"inters {int(r['interactions']):>9,}  "
                     f"avg/user {r.avg_per_user:7.3f}  avg/item {r.avg_per_item:7.3f}  "
                     f"sparsity {100 * r.sparsity:.5f}%")
    if ds.dropped_cold:
        lines.append(f"dropped {ds.dropped_cold:,} valid/test rows of users with no training row")
    return "\n".join(lines)
