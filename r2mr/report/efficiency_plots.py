"""Figures of notebook 04 (efficiency): training time per epoch and R2MR's benchmark, data sets as categories
(ordered by training edges; no line joins two data sets)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd


def _datasets_axis(ax: plt.Axes, names: Sequence[str], sizes: Sequence[float]) -> None:
    """Data sets as categories on x (no line joins two data sets), labelled with their training size."""
    ax.set_xticks(range(len(names)), [f"{n}\n{s / 1000:,.0f}k edges" for n, s in zip(names, sizes)], fontsize=8)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_yscale("log")
    plain = mticker.FuncFormatter(lambda v, _: f"{v:g}")  # 0.2, 1, 50: no 10^k notation
    ax.yaxis.set_minor_locator(mticker.LogLocator(subs=(2.0, 5.0)))  # labelled: a range under a decade has values
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.grid(True, axis="y", which="major", alpha=0.3)


def _device(text: str) -> str:
    return str(text).replace(" 1 threads", " 1 thread")


def timing_plot(table: pd.DataFrame) -> plt.Figure:
    """Seconds per training epoch (left) and per evaluation of valid + test (right) per data set (ordered by
    training interactions), one marker per model, no lines between data sets; ``table`` from
    :func:`r2mr.tables.timing_table`."""
    order = table.groupby("data set", sort=False)["train interactions"].first().sort_values()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0), constrained_layout=True)
    models = list(dict.fromkeys(table["model"]))
    for j, (model, g) in enumerate(table.groupby("model", sort=False)):
        x = np.array([order.index.get_loc(d) for d in g["data set"]]) + (j - (len(models) - 1) / 2) * 0.07
        for ax, col in zip(axes, ("s/epoch", "s/eval")):
            ax.plot(x, g[col], marker="o", ls="none", label=model)
    for ax, col in zip(axes, ("seconds per training epoch", "seconds per evaluation (valid + test)")):
        _datasets_axis(ax, list(order.index), list(order))
        ax.set(ylabel=col)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    devices = ", ".join(dict.fromkeys(_device(d) for d in table["device"]))
    seeds = "first seed of each row" if "seed" not in table else f"seed {table['seed'].iloc[0]}"
    fig.suptitle(f"Time per epoch and per evaluation, from the runs of notebook 03 ({seeds}); {devices}",
                 fontsize=9)
    return fig


def benchmark_plot(bench: pd.DataFrame) -> plt.Figure:
    """From :func:`r2mr.report.benchmark.benchmark`: R2MR's seconds per epoch and per evaluation (left), peak memory
    (middle) and the Reviewer's forward + backward edge-wise vs dense (right), per data set graph (ordered by
    training edges; markers, no lines between data sets)."""
    b = bench.sort_values("train_edges").reset_index(drop=True)
    x = np.arange(len(b))
    fig, (a, m, r) = plt.subplots(1, 3, figsize=(12, 3.8), constrained_layout=True)
    a.plot(x - 0.1, b["train_s_per_epoch"], marker="o", ls="none", label="training epoch")
    a.plot(x, b["eval_s_valid_and_test"], marker="s", ls="none", label="evaluation (valid + test)")
    a.plot(x + 0.1, b["rewriter_round20_s"], marker="^", ls="none", label="rewriter round (20 epochs)")
    a.set(ylabel="seconds", title="time")
    m.plot(x, b["peak_gib"], marker="o", ls="none", color="tab:purple")
    m.set(ylabel="GiB", title="peak memory")
    r.plot(x - 0.05, b["reviewer_edge_ms"], marker="o", ls="none", label="edge-wise (ours)")
    r.plot(x + 0.05, b["reviewer_dense_ms"], marker="s", ls="none", label="dense (official)")
    r.set(ylabel="ms per forward + backward", title="Reviewer")
    for ax in (a, m, r):
        _datasets_axis(ax, list(b["scale"]), list(b["train_edges"]))
    m.set_yscale("linear")
    m.set_ylim(0, None)
    for ax in (a, r):
        ax.legend(fontsize=7)
    fig.suptitle(f"R2MR at the paper's sizes, random features of the real widths, on {_device(b['device'].iloc[0])}"
                 f" ({b['timer'].iloc[0]})", fontsize=9)
    return fig
