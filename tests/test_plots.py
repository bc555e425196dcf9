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
