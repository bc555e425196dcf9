"""Figures of the notebooks: each function takes data or tidy tables and returns a matplotlib figure.

No I/O and no state: saving is :meth:`r2mr.report.outputs.Outputs.figure`. Importing this module does not pick a
backend (scripts and tests set ``MPLBACKEND=Agg``).
"""

from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import published as pub
from .dataset_tables import degrees
from .efficiency_plots import benchmark_plot, timing_plot  # noqa: F401 (notebook 04 reads them here)


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


ROLE_NAMES = {"model": "model", "control": "R2MR content control", "ablation": "R2MR variant (one switch changed)"}
PUBLISHED_MARKERS = ("D", "^", "v", "s", "P", "X")


def metric_points(tidy: pd.DataFrame, metric: str = "recall@20", selection: str = "valid",
                  order: Sequence[str] | None = None, base: str | None = None) -> plt.Figure:
    """One panel per data set, one row per label: our mean (a point coloured by role) ± sample std where
    n ≥ 2 seeds, every published value of that model as a black marker per source (its selection rule in the
    legend), and, when ``base`` names a row, a dashed line at that row's mean to read the others against.
    Points, not bars: the axis need not start at 0, and no bar area suggests a ratio. The title says the
    metric, n and the most epochs any run trained."""
    ok = tidy[(tidy.status == "ok") & (tidy.metric == metric) & (tidy.selection == selection)]
    datasets = list(dict.fromkeys(ok.dataset))
    labels = list(order or dict.fromkeys(ok.label))
    rows = [[lab for lab in labels if lab in set(ok[ok.dataset == d].label)] for d in datasets]
    fig, axes = plt.subplots(max(len(datasets), 1), 1, figsize=(9.0, 1.3 + 0.3 * sum(len(r) + 2 for r in rows)),
                             squeeze=False, constrained_layout=True,
                             gridspec_kw={"height_ratios": [len(r) + 1 for r in rows] or [1]})
    handles: dict[str, Any] = {}
    for ax, d, present in zip(axes[:, 0], datasets, rows):
        sub = ok[ok.dataset == d].set_index("label").loc[present]
        y = np.arange(len(present))[::-1]  # the first label on top
        for role in dict.fromkeys(sub.role):
            mask = (sub.role == role).to_numpy()
            handles[ROLE_NAMES.get(role, role)] = ax.scatter(sub["mean"][mask], y[mask], color=_colour(role), zorder=3)
        error_bars(ax, y, sub["mean"], sub["std"], sub["n_seeds"], horizontal=True)
        _published_markers(ax, d, sub, y, metric, handles)
        if base in sub.index:
            handles[f"base row: {base}"] = ax.axvline(sub.loc[base, "mean"], color="0.4", ls="--", lw=1)
        ax.set_yticks(y, [textwrap.shorten(lab, 60) for lab in present], fontsize=8)
        ax.set(title=f"{d} ({n_label(sub.n_seeds)})", xlabel=f"test {metric}", ylim=(-0.7, len(present) - 0.3))
        honest_span(ax, 0.2)
        ax.grid(True, axis="x", alpha=0.3)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=2, fontsize=8)
    most = int(ok["epochs_run"].max()) if "epochs_run" in ok and len(ok) else None
    fig.suptitle(f"Test {metric} at the best-validation epoch: mean over seeds, ± sample std where n ≥ 2 "
                 f"({n_label(ok.n_seeds)})" + (f"\nevery run stopped within {most} epochs (early stopping on "
                                               f"validation or the epoch cap)" if most else ""), fontsize=10)
    return fig


def honest_span(ax: plt.Axes, share: float = 0.2, axis: str = "x") -> None:
    """Widen an axis to at least ``share`` of its largest absolute limit, centred on the data, so that a
    small spread is not blown up to the full width (a 0.005 swing around 0.06 stays a small swing)."""
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    need = share * max(abs(lo), abs(hi))
    if hi - lo < need:
        mid = (lo + hi) / 2
        (ax.set_xlim if axis == "x" else ax.set_ylim)(mid - need / 2, mid + need / 2)


metric_bars = metric_points  # the earlier name


def _published_markers(ax: plt.Axes, dataset: str, sub: pd.DataFrame, y: np.ndarray, metric: str,
                       handles: dict[str, Any]) -> None:
    """Every published value of each model row, one marker shape per source, named with its selection rule."""
    keys = list(pub.SOURCES)
    for yi, (_, row) in zip(y, sub.iterrows()):
        if row["role"] != "model":
            continue
        for ref in pub.published(dataset, row["model"]) or []:
            if metric in ref.metrics:
                rule = "test-selected" if ref.source.selection == "test" else "best valid epoch"
                marker = PUBLISHED_MARKERS[keys.index(ref.source.key) % len(PUBLISHED_MARKERS)]
                handles[f"published: {ref.source.key} ({rule})"] = ax.scatter(
                    ref.metrics[metric], yi, marker=marker, facecolor="none", edgecolor="black", zorder=4)


def n_label(ns: Sequence[int] | pd.Series) -> str:
    """``"n = 3"`` or ``"n = 1–5"`` (seeds per point), for titles and captions."""
    ns = [int(n) for n in ns if pd.notna(n)]
    if not ns:
        return "n = 0"
    lo, hi = min(ns), max(ns)
    return f"n = {lo}" if lo == hi else f"n = {lo}–{hi}"


def error_bars(ax: plt.Axes, x: Sequence[float], mean: Sequence[float], std: Sequence[float],
               n: Sequence[int], horizontal: bool = False, **kw: Any) -> None:
    """Draw ± ``std`` at the points with n ≥ 2 only (one seed has no spread to show); ``horizontal``: the
    means are on the x axis and ``x`` holds the rows' y positions."""
    x, mean, std, n = (np.asarray(v, dtype=float) for v in (x, mean, std, n))
    keep = (n >= 2) & np.isfinite(std)
    if keep.any() and horizontal:
        ax.errorbar(mean[keep], x[keep], xerr=std[keep], fmt="none", ecolor="black", capsize=3, **kw)
    elif keep.any():
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
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"{mx} score", ylabel=f"{my} score")
    ax.set_title(textwrap.fill(title, 55) if title else f"η = {eta}", fontsize=9)
    ax.legend(fontsize=7, loc="lower left", markerscale=2)
    return fig


def score_histograms(scores: Mapping[str, np.ndarray], eta: float = 0.5,
                     corrupted: Mapping[str, np.ndarray] | None = None, title: str = "") -> plt.Figure:
    """One histogram per modality (clean vs corrupted items stacked when ``corrupted`` is given), η dashed;
    ``title`` should name the data set, the seed and the model state."""
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
        ax.axvline(eta, color="black", lw=1, ls="--", label=f"η = {eta}")
        ax.set(xlabel=f"{m} score", ylabel="items", xlim=(0, 1))
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def roc_curves(scores: Mapping[str, np.ndarray], corrupted: Mapping[str, np.ndarray],
               title: str = "Reviewer vs planted corruption") -> plt.Figure:
    """ROC of "a low Reviewer score flags a corrupted modality", one curve per modality, for one seed's scores
    (the AUC in the legend is that seed's; ``title`` should say which seed and model state)."""
    from .quality import roc

    fig, ax = plt.subplots(figsize=(4.2, 4.0), constrained_layout=True)
    for m, s in scores.items():
        fpr, tpr, auc = roc(s, corrupted[m])
        ax.plot(fpr, tpr, label=f"{m} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def eta_sweep_plot(sweep: pd.DataFrame, title: str = "") -> plt.Figure:
    """Shares of the quality states against η (a table from :func:`r2mr.report.quality.eta_sweep`); ``title`` should
    name the data set, the seed and the model state."""
    fig, ax = plt.subplots(figsize=(4.6, 3.2), constrained_layout=True)
    ax.stackplot(sweep.index, sweep.T.to_numpy(), labels=sweep.columns,
                 colors=[STATE_COLOURS.get(c, "grey") for c in sweep.columns], alpha=0.8)
    ax.set(xlabel="η", ylabel="share of items", xlim=(sweep.index.min(), sweep.index.max()), ylim=(0, 1))
    ax.legend(fontsize=8, loc="center right")
    if title:
        ax.set_title(title, fontsize=9)
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


def eta_curve(table: pd.DataFrame, base: float = 0.5) -> plt.Figure:
    """Recall@20 (mean over seeds, ± sample std where n ≥ 2) against the η R2MR was trained with, one panel per
    data set, the default η (``base``) marked, the y axis at least 20% of its top wide (no inflated swings);
    the share of disparity items at that η on a second axis. ``table`` from :func:`r2mr.report.tables.eta_table`."""
    datasets = list(dict.fromkeys(table.index.get_level_values(0)))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False,
                             constrained_layout=True)
    for ax, d in zip(axes[0], datasets):
        t = table.loc[d]
        ax.plot(t.index, t["recall@20"], marker="o", color="tab:blue", label="test recall@20")
        error_bars(ax, t.index, t["recall@20"], t["recall@20 std"], t["seeds"])
        ax.axvline(base, color="0.4", ls=":", lw=1, label=f"default η = {base}")
        honest_span(ax, 0.2, "y")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi + 0.45 * (hi - lo))  # room for the legend
        swing = t["recall@20"].max() - t["recall@20"].min()
        ax.set(xlabel="η (training threshold)", ylabel="test recall@20",
               title=f"{d} ({n_label(t['seeds'])}): recall@20 moves by {swing:.4f}")
        twin = ax.twinx()
        twin.plot(t.index, t["share disparity"], marker="s", ls="--", color="tab:orange", label="share disparity")
        twin.set(ylabel="share of disparity items", ylim=(0, 1))
        ax.grid(True, alpha=0.3)
        lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        twin.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="upper left")  # on top of both axes
    fig.suptitle("R2MR trained with each η: test recall@20 at the best-validation epoch, mean ± sample std",
                 fontsize=10)
    return fig
