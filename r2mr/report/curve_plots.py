"""Learning-curve figures (tables from :mod:`r2mr.report.curves`); returns matplotlib figures, saves nothing.

Each panel (one data set, or one family of rows) draws per label the mean validation metric over seeds
against the epoch, a band of ± one sample std where at least two seeds reached that epoch, each seed's
selected epoch as a marker on the mean curve's colour, and R2MR's rewrite rounds as short ticks at the
bottom of the panel (one per round and seed, at the epoch after which it ran). Importing this module does
not pick a backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import curves


def draw_curves(ax: plt.Axes, groups: curves.Records, metric: str = "recall@20", split: str = "valid",
                order: Sequence[str] | None = None) -> pd.DataFrame:
    """Draw ``groups``' curves on ``ax``; return the band table drawn (:func:`r2mr.report.curves.curve_band`)."""
    cur = curves.curve_frame(groups, metric, split)
    band = curves.curve_band(cur)
    points = curves.selected_points(cur, curves.selected_frame(groups, metric))
    rounds = curves.rewrite_frame(groups)
    labels = [lab for lab in (order or list(groups)) if lab in set(cur["label"])]
    for i, lab in enumerate(labels):
        b = band.loc[lab]
        x = b.index.to_numpy()
        (line,) = ax.plot(x, b["mean"], lw=1.5, label=f"{lab} (n = {int(b['n seeds'].max())})")
        two = (b["n seeds"] >= 2).to_numpy()
        ax.fill_between(x, (b["mean"] - b["std"]).where(two), (b["mean"] + b["std"]).where(two),
                        color=line.get_color(), alpha=0.2, lw=0)
        sel = points[points["label"] == lab]
        ax.plot(sel["epoch"], b["mean"].reindex(sel["epoch"]).to_numpy(), ls="none", marker="v", ms=6,
                color=line.get_color())
        rw = rounds[rounds["label"] == lab]
        if len(rw):
            ax.plot(rw["epoch"], np.full(len(rw), 0.02 + 0.03 * i), ls="none", marker="|", ms=10,
                    color=line.get_color(), transform=ax.get_xaxis_transform())
    ax.set(xlabel="epoch (0-based)", ylabel=f"{split} {metric}")
    ax.grid(True, alpha=0.3)
    return band


def learning_curves(panels: Mapping[str, curves.Records], metric: str = "recall@20", split: str = "valid",
                    ncols: int = 2) -> plt.Figure:
    """One panel per entry of ``panels`` (title: its key, e.g. a data set) with :func:`draw_curves`."""
    n = max(len(panels), 1)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(6.0, 5.2 * ncols), 3.9 * nrows), squeeze=False,
                             constrained_layout=True)
    for ax, (title, groups) in zip(axes.flat, panels.items()):
        draw_curves(ax, groups, metric, split)
        ax.set_title(title)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{split.capitalize()} {metric} per epoch: mean over seeds, band ± 1 sample std where ≥ 2 seeds "
                 f"ran\n▼ selected epochs; | R2MR rewrite rounds (after that epoch's training)", fontsize=9)
    return fig
