"""The trainer's one-line reports: the periodic progress line of :meth:`r2mr.training.trainer.Trainer.fit`
(epochs, loss, valid metric, best so far, elapsed time and ETA) and the summary line of a finished run's result."""

from __future__ import annotations

import math
from typing import Any

from ..evaluation.epoch_selection import by_valid
from .config import TrainConfig


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_line(history: list[dict[str, Any]], cfg: TrainConfig, meta: dict[str, Any], elapsed: float,
                  epochs_timed: int, stopped: bool = False) -> str:
    """One progress line: epochs done/max, loss, valid metric, best so far (epochs 0-based, as ``best_epoch``),
    elapsed time and ETA.

    ETA = epochs left until ``max_epochs`` x the mean wall time of the ``epochs_timed`` epochs of this session
    (training, hook and evaluation); early stopping may end the run sooner, so it is an upper bound.
    """
    e, m = history[-1], cfg.valid_metric
    best = by_valid(history, m, cfg.patience).best_epoch
    left = cfg.max_epochs - len(history)
    eta = "stopped early" if stopped else ("done" if left <= 0 else
                                           f"ETA <= {_hms(left * elapsed / max(epochs_timed, 1))} (early stopping "
                                           f"may end sooner)")
    who = f"{meta['model']} on {meta['dataset']}: " if "model" in meta and "dataset" in meta else ""
    return (f"{who}{len(history)}/{cfg.max_epochs} epochs, loss {e['loss']:.4f}, valid {m} {e['valid'][m]:.4f} "
            f"(best {history[best]['valid'][m]:.4f} at epoch {best}), {_hms(elapsed)} elapsed, {eta}")


def summary_line(res: dict[str, Any]) -> str:
    """One line: model, data set, best epoch and the main test metrics."""
    t = res["test"]
    return (f"{res.get('model')} on {res.get('dataset')} (seed {res['seed']}, {res['device']}): best valid epoch "
            f"{res['best_epoch']}/{res['epochs_run']}, test recall@20 {t.get('recall@20', math.nan):.4f} "
            f"ndcg@20 {t.get('ndcg@20', math.nan):.4f}, {res['seconds_per_epoch']:.2f} s/epoch")
