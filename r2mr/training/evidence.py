"""Evidence of a run's selected epochs: the per-user valid/test metrics of the best-valid epoch (``by_valid``)
and of the official test-selected epoch (``by_test``), and the model's artifacts at the best-valid epoch.

``best`` is the trainer's ``{rule: {"epoch": int, split: per-user metrics}}`` dict (it travels in the
checkpoint, so a resumed run keeps it); per-user metrics are ``{split: {metric: tensor of shape (n_users,)}}``
as :meth:`r2mr.evaluation.evaluator.Evaluator.evaluate_full` returns them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core.atomic_io import save_torch
from ..evaluation.epoch_selection import by_valid, official_test_rule
from ..evaluation.evaluator import save_per_user
from ..models.base import Recommender
from .config import TrainConfig


def track_best(best: dict[str, dict[str, Any]], entry: dict[str, Any], history: list[dict[str, Any]],
               cfg: TrainConfig, per_user: dict[str, dict[str, torch.Tensor]], model: Recommender,
               run_dir: Path | None) -> None:
    """Keep in ``best`` the per-user metrics of ``entry``'s epoch if it is the best-valid epoch (``by_valid``)
    or the official test-selected one (``by_test``) of ``history``. At a new best-valid epoch the model's
    artifacts are saved as ``artifacts_best.pt`` in ``run_dir``."""
    epoch = entry["epoch"]
    if by_valid(history, cfg.valid_metric, cfg.patience).best_epoch == epoch:
        best["by_valid"] = {"epoch": epoch, **per_user}
        artifacts = model.artifacts() if run_dir is not None else None
        if artifacts:
            save_torch({**artifacts, "epoch": epoch}, run_dir / "artifacts_best.pt")
    if official_test_rule(history, cfg.official_stopping_step).best_epoch == epoch:
        best["by_test"] = {"epoch": epoch, **per_user}


def evidence_fields(run_dir: Path | None, best: dict[str, dict[str, Any]], valid_epoch: int,
                    test_epoch: int) -> dict[str, str]:
    """Write ``per_user.npz`` (when the stored epochs are the selected ones) and return the result fields
    naming it and ``artifacts_best.pt``, relative to the run folder."""
    if run_dir is None:
        return {}
    out, kept = {}, {r: v for r, v in best.items()
                     if v["epoch"] == {"by_valid": valid_epoch, "by_test": test_epoch}[r]}
    if kept:
        save_per_user(run_dir / "per_user.npz", kept)
        out["per_user"] = "per_user.npz"
    if (run_dir / "artifacts_best.pt").is_file():
        out["artifacts_best"] = "artifacts_best.pt"
    return out
