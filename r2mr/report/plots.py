"""Figures of the notebooks: each function takes data or tidy tables and returns a matplotlib figure.

No I/O and no state: saving is :meth:`r2mr.report.outputs.Outputs.figure`. Importing this module does not pick a
backend (scripts and tests set ``MPLBACKEND=Agg``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import published as pub
from .dataset_tables import degrees


def degree_distribution(datasets: Mapping[str, Any], split: str = "train") -> plt.Figure:
    """Complementary CDF of user and item degrees (training interactions), log-log, one line per data set."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for name, ds in datasets.items():
        for ax, deg in zip(axes, degrees(ds, split).values()):
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
    """Bars of our mean per data set and label (runs that were done), ± sample std only where n ≥ 2 seeds,
    published values as black ticks; the title says n."""
    ok = tidy[(tidy.status == "ok") & (tidy.metric == metric) & (tidy.selection == selection)]
    datasets = list(dict.fromkeys(ok.dataset))
    labels = list(order or dict.fromkeys(ok.label))
    fig, axes = plt.subplots(1, max(len(datasets), 1), figsize=(max(4.0, 3.2 * len(datasets)), 3.8),
                             squeeze=False, constrained_layout=True)
    for ax, d in zip(axes[0], datasets):
        sub = ok[ok.dataset == d].set_index("label")
        present = [lab for lab in labels if lab in sub.index]
        x = np.arange(len(present))
        ax.bar(x, sub.loc[present, "mean"], color=[_colour(sub.loc[lab, "role"]) for lab in present])
        error_bars(ax, x, sub.loc[present, "mean"], sub.loc[present, "std"], sub.loc[present, "n_seeds"])
        for i, lab in enumerate(present):
            ref = pub.published(d, sub.loc[lab, "model"])
            if ref and sub.loc[lab, "role"] == "model" and metric in ref[0].metrics:
                ax.plot([i - 0.4, i + 0.4], [ref[0].metrics[metric]] * 2, color="black", lw=2)
        ax.set_xticks(x, present, rotation=35, ha="right", fontsize=8)
        ax.set(title=d, ylabel=metric if ax is axes[0][0] else None)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"Test {metric}: mean over seeds ({n_label(ok.n_seeds)}; ± sample std where n ≥ 2); "
                 f"black: published", fontsize=10)
    return fig


def n_label(ns: Sequence[int] | pd.Series) -> str:
    """``"n = 3"`` or ``"n = 1–5"`` (seeds per point), for titles and captions."""
    ns = [int(n) for n in ns if pd.notna(n)]
    if not ns:
        return "n = 0"
    lo, hi = min(ns), max(ns)
    return f"n = {lo}" if lo == hi else f"n = {lo}–{hi}"


def error_bars(ax: plt.Axes, x: Sequence[float], mean: Sequence[float], std: Sequence[float],
               n: Sequence[int], **kw: Any) -> None:
    """Draw ± ``std`` at the points with n ≥ 2 only (one seed has no spread to show)."""
    x, mean, std, n = (np.asarray(v, dtype=float) for v in (x, mean, std, n))
    keep = (n >= 2) & np.isfinite(std)
    if keep.any():
        ax.errorbar(x[keep], mean[keep], yerr=std[keep], fmt="none", ecolor="black", capsize=3, **kw)


def _colour(role: str) -> str:
    return {"model": "tab:blue", "control": "tab:gray", "ablation": "tab:orange"}.get(role, "tab:blue")


# ---- Modality Reviewer ----------------------------------------------------------------------------------------

STATE_COLOURS = {"high-quality": "tab:green", "disparity": "tab:orange", "low-quality": "tab:red"}


def quality_scatter(scores: Mapping[str, np.ndarray], eta: float = 0.5, title: str = "",
                    corrupted: Mapping[str, np.ndarray] | None = None) -> plt.Figure:
    """Per-item scores of two modalities (x: first, y: second) with the η lines, in the spirit of the paper's
    Fig. 1C. Points are coloured by quality state, or by planted corruption when ``corrupted`` is given."""
    from .quality import area_labels

    (mx, x), (my, y) = scores.items()
    fig, ax = plt.subplots(figsize=(4.6, 4.4), constrained_layout=True)
    if corrupted is None:
        states = area_labels(scores, eta)
        groups = {s: states == s for s in STATE_COLOURS}
        colours = STATE_COLOURS
    else:
        cx, cy = np.asarray(corrupted[mx], bool), np.asarray(corrupted[my], bool)
        groups = {"both informative": ~cx & ~cy, f"{mx} corrupted": cx & ~cy, f"{my} corrupted": cy & ~cx,
                  "both corrupted": cx & cy}
        colours = dict(zip(groups, ["tab:green", "tab:blue", "tab:purple", "tab:red"]))
    for name, mask in groups.items():
        ax.scatter(np.asarray(x)[mask], np.asarray(y)[mask], s=6, alpha=0.5, color=colours[name],
                   label=f"{name} ({int(mask.sum())})")
    ax.axvline(eta, color="black", lw=1, ls="--")
    ax.axhline(eta, color="black", lw=1, ls="--")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"{mx} score", ylabel=f"{my} score", title=title or f"η = {eta}")
    ax.legend(fontsize=7, loc="lower left", markerscale=2)
    return fig


def score_histograms(scores: Mapping[str, np.ndarray], eta: float = 0.5,
                     corrupted: Mapping[str, np.ndarray] | None = None) -> plt.Figure:
    """One histogram per modality (clean vs corrupted items stacked when ``corrupted`` is given), η dashed."""
    fig, axes = plt.subplots(1, len(scores), figsize=(4.0 * len(scores), 3.2), squeeze=False,
                             constrained_layout=True)
    bins = np.linspace(0, 1, 41)
    for ax, (m, s) in zip(axes[0], scores.items()):
        s = np.asarray(s)
        if corrupted is None:
            ax.hist(s, bins=bins, color="tab:blue")
        else:
            c = np.asarray(corrupted[m], bool)
            ax.hist([s[~c], s[c]], bins=bins, stacked=True, color=["tab:green", "tab:red"],
                    label=["informative", "corrupted"])
            ax.legend(fontsize=8)
        ax.axvline(eta, color="black", lw=1, ls="--")
        ax.set(xlabel=f"{m} score", ylabel="items", xlim=(0, 1))
    return fig


def roc_curves(scores: Mapping[str, np.ndarray], corrupted: Mapping[str, np.ndarray]) -> plt.Figure:
    """ROC of "a low Reviewer score flags a corrupted modality", one curve per modality."""
    from .quality import roc

    fig, ax = plt.subplots(figsize=(4.2, 4.0), constrained_layout=True)
    for m, s in scores.items():
        fpr, tpr, auc = roc(s, corrupted[m])
        ax.plot(fpr, tpr, label=f"{m} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="Reviewer vs planted corruption")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def eta_sweep_plot(sweep: pd.DataFrame) -> plt.Figure:
    """Shares of the quality states against η (a table from :func:`r2mr.report.quality.eta_sweep`)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.2), constrained_layout=True)
    ax.stackplot(sweep.index, sweep.T.to_numpy(), labels=sweep.columns,
                 colors=[STATE_COLOURS.get(c, "grey") for c in sweep.columns], alpha=0.8)
    ax.set(xlabel="η", ylabel="share of items", xlim=(sweep.index.min(), sweep.index.max()), ylim=(0, 1))
    ax.legend(fontsize=8, loc="center right")
    return fig


def rounds_plot(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """Across rewrite rounds: the shares of the quality states each round started from (left) and the
    candidates and accepted rewrites per direction (right); ``table`` from :func:`r2mr.report.quality.rounds_table`."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for state in ("high", "disparity", "low"):
        a.plot(table.index, table[f"share {state}"], marker="o", label=state,
               color=STATE_COLOURS[{"high": "high-quality", "low": "low-quality"}.get(state, state)])
    a.set(xlabel="rewrite round", ylabel="share of items", ylim=(0, 1), title="quality states at each round")
    a.legend(fontsize=8)
    for d in [c[: -len(" candidates")] for c in table.columns if c.endswith(" candidates")]:
        line, = b.plot(table.index, table[f"{d} candidates"], ls="--", marker=".", label=f"{d} candidates")
        b.plot(table.index, table[f"{d} accepted"], marker="o", color=line.get_color(), label=f"{d} accepted")
    b.set(xlabel="rewrite round", ylabel="items", title="rewrites per round")
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(True, alpha=0.3)
        ax.set_xticks(table.index)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def eta_curve(table: pd.DataFrame) -> plt.Figure:
    """Recall@20 (mean over seeds, ± sample std where n ≥ 2) against the η R2MR was trained with, one panel per
    data set, with the share of disparity items at that η on a second axis; ``table`` from
    :func:`r2mr.report.tables.sensitivity_table` (its ``seeds`` column is n)."""
    datasets = list(dict.fromkeys(table.index.get_level_values(0)))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False,
                             constrained_layout=True)
    for ax, d in zip(axes[0], datasets):
        t = table.loc[d]
        ax.plot(t.index, t["recall@20"], marker="o", color="tab:blue", label="test recall@20")
        error_bars(ax, t.index, t["recall@20"], t["recall@20 std"], t["seeds"])
        ax.set(xlabel="η (training threshold)", ylabel="recall@20", title=f"{d} ({n_label(t['seeds'])})")
        twin = ax.twinx()
        twin.plot(t.index, t["share disparity"], marker="s", ls="--", color="tab:orange", label="share disparity")
        twin.set(ylabel="share of disparity items", ylim=(0, 1))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        twin.legend(fontsize=7, loc="lower right")
    return fig


def timing_plot(table: pd.DataFrame) -> plt.Figure:
    """Seconds per training epoch (left) and per evaluation of valid + test (right) against the number of
    training interactions, one line per model; ``table`` from :func:`r2mr.report.tables.timing_table`."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for model, g in table.groupby("model", sort=False):
        g = g.sort_values("train interactions")
        for ax, col in zip(axes, ("s/epoch", "s/eval")):
            ax.plot(g["train interactions"], g[col], marker="o", label=model)
    for ax, col in zip(axes, ("seconds per training epoch", "seconds per evaluation (valid + test)")):
        ax.set(xscale="log", yscale="log", xlabel="training interactions", ylabel=col)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    devices = ", ".join(dict.fromkeys(table["device"]))
    fig.suptitle(f"Measured on {devices}", fontsize=9)
    return fig


def benchmark_plot(bench: pd.DataFrame) -> plt.Figure:
    """From :func:`r2mr.report.benchmark.benchmark`: R2MR's seconds per epoch and per evaluation (left), peak memory
    (middle) and the Reviewer's forward + backward edge-wise vs dense (right), against training edges."""
    b = bench.sort_values("train_edges")
    x = b["train_edges"]
    fig, (a, m, r) = plt.subplots(1, 3, figsize=(11, 3.4), constrained_layout=True)
    a.plot(x, b["train_s_per_epoch"], marker="o", label="training epoch")
    a.plot(x, b["eval_s_valid_and_test"], marker="s", label="evaluation (valid + test)")
    a.plot(x, b["rewriter_round20_s"], marker="^", label="rewriter round (20 epochs)")
    a.set(ylabel="seconds", title="time")
    m.plot(x, b["peak_gib"], marker="o", color="tab:purple")
    m.set(ylabel="GiB", title="peak memory")
    r.plot(x, b["reviewer_edge_ms"], marker="o", label="edge-wise (ours)")
    r.plot(x, b["reviewer_dense_ms"], marker="s", label="dense (official)")
    r.set(ylabel="ms per forward + backward", title="Reviewer")
    for ax in (a, m, r):
        ax.set(xscale="log", xlabel="training interactions")
        ax.grid(True, which="both", alpha=0.3)
        for xi, name in zip(x, b["scale"]):
            ax.annotate(name, (xi, ax.get_ylim()[0]), fontsize=7, rotation=90, va="bottom", ha="right", alpha=0.6)
    for ax in (a, r):
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(f"R2MR at the paper's sizes on {b['device'].iloc[0]} ({b['timer'].iloc[0]})", fontsize=9)
    return fig
