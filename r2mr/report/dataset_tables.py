"""Tables about the data sets themselves (notebook 00): our counts beside the published statistics, degree
distributions, and the planted corruption of a synthetic set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.discovery import SYNTHETIC, find_dataset_root
from . import published as pub


def statistics_vs_published(ds: Any) -> pd.DataFrame:
    """Our counts of ``ds`` beside the published statistics (reference-numbers §3.1) and the difference."""
    from ..data import statistics

    st = statistics(ds)
    ours = {"users": ds.n_users, "items": ds.n_items, "interactions": int(st.loc["all", "interactions"]),
            "train": int(st.loc["train", "interactions"]), "valid": int(st.loc["valid", "interactions"]),
            "test": int(st.loc["test", "interactions"]), "sparsity %": 100 * float(st.loc["all", "sparsity"])}
    ref = pub.STATISTICS.get(ds.name)
    theirs = {k: (100 * ref.sparsity if k == "sparsity %" else getattr(ref, k)) for k in ours} if ref else {}
    df = pd.DataFrame({"ours": pd.Series(ours, dtype=object),
                       "published": pd.Series({k: theirs.get(k, "—") for k in ours}, dtype=object)})
    df["difference"] = ["—" if not ref else (f"{ours[k] - theirs[k]:+.4f}" if k == "sparsity %"
                                             else f"{ours[k] - theirs[k]:+,d}")
                        for k in ours]
    df["ours"] = [f"{v:.4f}" if k == "sparsity %" else f"{v:,d}" for k, v in ours.items()]
    df["published"] = [f"{v:.4f}" if k == "sparsity %" and v != "—" else (f"{v:,d}" if v != "—" else v)
                       for k, v in zip(ours, df.published)]
    df.index.name = ds.name
    return df


def degrees(ds: Any, split: str = "train") -> dict[str, np.ndarray]:
    """Interaction counts per user and per item in ``split`` (zeros included)."""
    sp = ds.split(split)
    return {"user": np.bincount(sp.users, minlength=ds.n_users), "item": np.bincount(sp.items, minlength=ds.n_items)}


def degree_summary(datasets: dict[str, Any], split: str = "train") -> pd.DataFrame:
    """Per data set and side (user, item): mean, median, 90th percentile and max degree, and zero-degree count."""
    rows = []
    for name, ds in datasets.items():
        for side, deg in degrees(ds, split).items():
            rows.append({"data set": name, "side": side, "count": len(deg), "mean": float(deg.mean()),
                         "median": float(np.median(deg)), "p90": float(np.percentile(deg, 90)),
                         "max": int(deg.max()), f"no {split} interaction": int((deg == 0).sum())})
    return pd.DataFrame(rows).set_index(["data set", "side"])


def corruption_summary(name: str = SYNTHETIC, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Planted corruption of a synthetic set: items per (text corrupted, image corrupted) combination."""
    from ..data.synth import load_quality

    quality = load_quality(find_dataset_root(name, data_dir) / name)
    q = quality.pivot(index="item", columns="modality", values="corrupted")
    kind = np.select([q.text & q.image, q.text, q.image], ["both corrupted", "text corrupted", "image corrupted"],
                     "both informative")
    counts = pd.Series(kind).value_counts().reindex(["both informative", "text corrupted", "image corrupted",
                                                     "both corrupted"], fill_value=0)
    return pd.DataFrame({"items": counts, "share": counts / counts.sum()}).rename_axis(name)


def planted_corruption(name: str = SYNTHETIC, data_dir: str | Path | None = None) -> dict[str, np.ndarray] | None:
    """``{modality: corrupted (n_items,)}`` of a synthetic set, or ``None`` where there is no ground truth."""
    from ..data.synth import load_quality
    from .quality import corruption_masks

    root = find_dataset_root(name, data_dir)
    if root is None or not (root / name / "quality.csv").is_file():
        return None
    q = load_quality(root / name)
    return corruption_masks(q, int(q.item.max()) + 1)
