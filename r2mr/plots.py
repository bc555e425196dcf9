"""Figures of the notebooks: each function takes data or tidy tables and returns a matplotlib figure.

No I/O and no state: saving is :meth:`r2mr.report.Outputs.figure`. Importing this module does not pick a
backend (scripts and tests set ``MPLBACKEND=Agg``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import published as pub
from .report import degrees


def degree_distribution(datasets: Mapping[str, Any], split: str = "train") -> plt.Figure:
    """Complementary CDF of user and item degrees (training interactions), log-log, one line per data set."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for name, ds in datasets.items():
        for ax, (side, deg) in zip(axes, degrees(ds, split).items()):
            d = np.sort(deg[deg > 0])
            ccdf = 1.0 - np.arange(len(d)) / len(d)  # share of nodes with degree >= d
            ax.loglog(d, ccdf, label=f"{name} (max {d[-1]:,})", lw=1.5)
    for ax, side in zip(axes, ("user", "item")):
        ax.set(xlabel=f"{side} degree ({split} interactions)", ylabel=f"share of {side}s with degree ≥ x",
               title=f"{side.capitalize()} degree distribution")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def metric_bars(tidy: pd.DataFrame, metric: str = "recall@20", selection: str = "valid",
                order: Sequence[str] | None = None) -> plt.Figure:
    """Bars of our mean ± std per data set and label (runs that were done), published values as black ticks."""
    ok = tidy[(tidy.status == "ok") & (tidy.metric == metric) & (tidy.selection == selection)]
    datasets = list(dict.fromkeys(ok.dataset))
    labels = list(order or dict.fromkeys(ok.label))
    fig, axes = plt.subplots(1, max(len(datasets), 1), figsize=(max(4.0, 3.2 * len(datasets)), 3.8),
                             squeeze=False, constrained_layout=True)
    for ax, d in zip(axes[0], datasets):
        sub = ok[ok.dataset == d].set_index("label")
        present = [lab for lab in labels if lab in sub.index]
        x = np.arange(len(present))
        ax.bar(x, sub.loc[present, "mean"], yerr=sub.loc[present, "std"].fillna(0.0), capsize=3,
               color=[_colour(sub.loc[lab, "role"]) for lab in present])
        for i, lab in enumerate(present):
            ref = pub.published(d, sub.loc[lab, "model"])
            if ref and sub.loc[lab, "role"] == "model" and metric in ref[0].metrics:
                ax.plot([i - 0.4, i + 0.4], [ref[0].metrics[metric]] * 2, color="black", lw=2)
        ax.set_xticks(x, present, rotation=35, ha="right", fontsize=8)
        ax.set(title=d, ylabel=metric if ax is axes[0][0] else None)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"Test {metric} (mean ± std over seeds; black: published)", fontsize=10)
    return fig


def _colour(role: str) -> str:
    return {"model": "tab:blue", "control": "tab:gray", "ablation": "tab:orange"}.get(role, "tab:blue")
