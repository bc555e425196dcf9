"""Figures draw error bars only where n >= 2 seeds and say n in the title."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from r2mr.report import plots


def _bars(ax: plt.Axes) -> list[np.ndarray]:
    """The vertical error-bar segments drawn on ``ax`` (one (2, 2) array per bar)."""
    return [seg for c in ax.collections for seg in getattr(c, "get_segments", list)()]


def test_error_bars_only_for_two_or_more_seeds() -> None:
    fig, ax = plt.subplots()
    plots.error_bars(ax, [0, 1, 2], [0.1, 0.2, 0.3], [0.01, np.nan, 0.02], [3, 1, 1])
    segs = _bars(ax)
    assert len(segs) == 1 and np.allclose(segs[0][:, 1], [0.09, 0.11])
    plt.close(fig)
    assert plots.n_label([3, 3]) == "n = 3" and plots.n_label(pd.Series([1, 5, 3])) == "n = 1–5"


def test_metric_bars_say_n() -> None:
    tidy = pd.DataFrame({"status": "ok", "metric": "recall@20", "selection": "valid", "dataset": "synthetic",
                         "label": ["BPR", "LightGCN"], "model": ["bpr", "lightgcn"], "role": "model",
                         "mean": [0.1, 0.2], "std": [np.nan, 0.01], "n_seeds": [1, 3]})
    fig = plots.metric_bars(tidy)
    assert "n = 1–3" in fig._suptitle.get_text()
    assert len(_bars(fig.axes[0])) == 1  # only LightGCN (3 seeds) has an error bar
    plt.close(fig)


def test_metric_points_show_every_published_source_and_the_base_row() -> None:
    """TikTok LightGCN has two published sources (DiffMM, DA-MRS): both are drawn and named with their rule."""
    tidy = pd.DataFrame({"status": "ok", "metric": "recall@20", "selection": "valid", "dataset": "tiktok",
                         "label": ["LightGCN", "R2MR", "R2MR content control"], "model": ["lightgcn", "r2mr", "r2mr"],
                         "role": ["model", "model", "control"], "mean": [0.06, 0.065, 0.05],
                         "std": [0.001, 0.002, 0.003], "n_seeds": [5, 5, 5], "epochs_run": [5, 5, 5]})
    fig = plots.metric_points(tidy, base="R2MR")
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "published: DiffMM (test-selected)" in names and "published: DA-MRS (test-selected)" in names
    assert "R2MR content control" in names and "base row: R2MR" in names
    assert "within 5 epochs" in fig._suptitle.get_text()
    plt.close(fig)


def test_honest_span_keeps_a_small_swing_small() -> None:
    fig, ax = plt.subplots()
    ax.plot([0.4, 0.5, 0.6], [0.0580, 0.0585, 0.0627])
    top = ax.get_ylim()[1]
    plots.honest_span(ax, 0.2, "y")
    lo, hi = ax.get_ylim()
    assert abs((hi - lo) - 0.2 * top) < 1e-12 and lo < 0.058 and hi > 0.0627
    plt.close(fig)


def test_timing_plot_joins_no_data_sets() -> None:
    table = pd.DataFrame({"data set": ["a", "b", "a", "b"], "model": ["BPR", "BPR", "MGCN", "MGCN"],
                          "train interactions": [100, 1000, 100, 1000], "device": "cpu (x86_64, 1 threads)",
                          "s/epoch": [0.1, 1.0, 0.3, 3.0], "s/eval": [0.01, 0.1, 0.02, 0.2]})
    fig = plots.timing_plot(table)
    assert all(line.get_linestyle() == "None" for ax in fig.axes for line in ax.get_lines())
    assert "1 thread)" in fig._suptitle.get_text()
    assert [t.get_text().split("\n")[0] for t in fig.axes[0].get_xticklabels()] == ["a", "b"]
    plt.close(fig)


def test_timing_plot_labels_a_log_axis_that_spans_less_than_a_decade() -> None:
    table = pd.DataFrame({"data set": ["a"] * 3, "model": ["BPR", "MGCN", "R2MR"], "train interactions": [100] * 3,
                          "device": "cpu", "s/epoch": [0.2, 1.1, 5.0], "s/eval": [0.3, 0.45, 0.6]})
    fig = plots.timing_plot(table)
    fig.canvas.draw()
    ax = fig.axes[1]  # evaluation seconds: 0.3 to 0.6, no power of ten inside
    lo, hi = ax.get_ylim()
    shown = [t.get_text() for t in ax.get_yticklabels(which="both") if lo <= t.get_position()[1] <= hi]
    assert sum(bool(s) for s in shown) >= 2, shown  # values a reader can read, not an unlabelled axis
    plt.close(fig)
