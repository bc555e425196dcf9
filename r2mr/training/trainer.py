"""The trainer: BPR batches, Adam(W), per-epoch evaluation of valid and test, early stopping, and
checkpoints that let a killed run resume to the same final numbers.

``fit`` keeps the full per-epoch history (loss, timings, every valid and test metric), so any selection
rule can be applied afterwards (see :mod:`r2mr.evaluation.epoch_selection`). CPU runs with the same seed are
bit-identical.
Its progress and summary lines are in :mod:`r2mr.training.progress`, the per-user evidence of the selected epochs
in :mod:`r2mr.training.evidence`, the checkpointed RNG states in :mod:`r2mr.training.rng_state`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import config as cfgmod
from ..core.atomic_io import load_torch, run_metadata, save_torch, write_text
from ..core.errors import ConfigError, TrainingError
from ..core.memory import keep_freed_memory
from ..data import Dataset
from ..data.sampler import BPRSampler
from ..evaluation.epoch_selection import by_valid, official_test_rule
from ..evaluation.evaluator import Evaluator
from ..models.base import Recommender
from .adam import Adam, AdamW
from .config import TrainConfig
from .evidence import evidence_fields, track_best
from .progress import progress_line
from .rng_state import rng_state, set_rng_state
from .runtime import run_switches

log = logging.getLogger(__name__)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base LR during ``epoch`` (0-based)."""
    if cfg.lr_schedule == "linear":
        f = 1.0 - epoch / cfg.lr_linear_epochs
        return max(f, 0.0) if cfg.lr_clamp else f
    return cfg.lr_decay ** (epoch / cfg.lr_decay_every)


def build_optimizer(model: Recommender, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    cls = AdamW if cfg.optimizer == "adamw" else Adam  # torch's AdamW / Adam bits, fewer passes on a CPU
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """Trains one model on one data set; ``run_dir`` (optional) holds checkpoint, log and result."""

    progress_every_epochs: int = 10  # log a progress line at least every this many epochs ...
    progress_every_seconds: float = 60.0  # ... or this many seconds, whichever comes first

    def __init__(self, model: Recommender, ds: Dataset, cfg: TrainConfig, device: torch.device | str = "cpu",
                 run_dir: str | Path | None = None, progress: bool = True,
                 meta: dict[str, Any] | None = None) -> None:
        self.device = torch.device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # freed tables stay in the heap: no page faults per step (r2mr.core.memory)
        self.model, self.ds, self.cfg = model.to(self.device), ds, cfg
        self.run_dir = Path(run_dir) if run_dir else None
        self.progress, self.meta = progress, dict(meta or {})
        self.sampler = BPRSampler(ds, cfg.batch_size, cfg.negatives, seed=cfg.seed)
        self.evaluator = Evaluator(ds, cfg.topk, cfg.eval_batch_size, self.device)
        self.optimizer = build_optimizer(model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: lr_factor(e, cfg))
        self.history: list[dict[str, Any]] = []
        self._best_per_user: dict[str, dict[str, Any]] = {}  # see r2mr.training.evidence
        self._last_per_user: dict[str, dict[str, torch.Tensor]] = {}
        self.config = {**cfgmod.to_dict(cfg), **cfgmod.to_dict(model.cfg)}
        self.switches: dict[str, bool] = {}  # set by fit (see r2mr.training.runtime.run_switches)

    # -- checkpoints -------------------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path | None:
        return self.run_dir / "checkpoint.pt" if self.run_dir else None

    def save_checkpoint(self) -> None:
        if self.ckpt_path is None:
            return
        save_torch({"epoch": len(self.history) - 1, "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "sampler": self.sampler.state_dict(), "rng": rng_state(), "history": self.history,
                    "extra": self.model.extra_state(), "config": self.config, "per_user": self._best_per_user},
                   self.ckpt_path)

    def try_resume(self) -> bool:
        """Load the run directory's checkpoint if there is one (weights_only: a planted pickle is refused, not
        run); its config must match."""
        if self.ckpt_path is None or not self.ckpt_path.is_file():
            return False
        ck = load_torch(self.ckpt_path, map_location=self.device)
        if ck["config"] != self.config:
            diff = sorted(k for k in set(ck["config"]) | set(self.config) if ck["config"].get(k) != self.config.get(k))
            raise ConfigError(f"{self.ckpt_path}: checkpoint was made with another config "
                              f"(differs in {', '.join(diff)}); fix: use another run directory or --restart")
        self.model.load_state_dict(ck["model"])
        self.model.load_extra_state(ck["extra"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.sampler.load_state_dict(ck["sampler"])
        set_rng_state(ck["rng"])
        self.history = ck["history"]
        self._best_per_user = ck.get("per_user", {})
        log.info("resumed %s after epoch %d", self.ckpt_path, ck["epoch"])
        return True

    # -- training ----------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training pairs; returns (summed loss, seconds)."""
        self.model.train()
        self.model.on_epoch_start(epoch)
        _sync(self.device)
        t0, total, last_finite = time.perf_counter(), 0.0, None
        bar = tqdm(self.sampler, total=len(self.sampler), desc=f"epoch {epoch}", leave=False, disable=not self.progress)
        for b, batch in enumerate(bar):
            loss = self.model.loss(batch.to(self.device))
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss {loss.item()} at epoch {epoch}, batch {b} "
                                    f"(last finite batch loss {last_finite}); fix: lower lr or raise regularisation")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            last_finite = loss.item()
            total += last_finite
        _sync(self.device)
        return total, time.perf_counter() - t0

    def evaluate(self) -> tuple[dict[str, float], dict[str, float], float]:
        """(valid metrics, test metrics, seconds) with one forward pass for both splits."""
        self.model.eval()
        _sync(self.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            score = self.model.scorer()
            res, self._last_per_user = self.evaluator.evaluate_full(score, ("valid", "test"))
            valid, test = res["valid"], res["test"]
        _sync(self.device)
        return valid, test, time.perf_counter() - t0

    def should_stop(self) -> bool:
        c = self.cfg
        v = by_valid(self.history, c.valid_metric, c.patience).stop_epoch is not None
        o = official_test_rule(self.history, c.official_stopping_step).stop_epoch is not None
        return {"valid": v, "official": o, "both": v and o}[c.stop_rule]

    def fit(self, resume: bool = True, on_epoch: Callable[[dict], None] | None = None) -> dict[str, Any]:
        """Train until the stop rule fires or ``max_epochs``; save and return the result dict.

        ``on_epoch(entry)`` is called after each epoch's checkpoint is written (progress, fault injection). The
        runtime switches (:func:`r2mr.training.runtime.run_switches`: the allocator, and TF32 where the model's
        config asks for it) hold for this call only and are recorded in the result (``"switches"``).
        """
        with run_switches(tf32=bool(getattr(self.model.cfg, "tf32", False))) as self.switches:
            return self._fit(resume, on_epoch)

    def _fit(self, resume: bool, on_epoch: Callable[[dict], None] | None) -> dict[str, Any]:
        """The training loop of :meth:`fit`.

        Logs one INFO line to ``r2mr.training.trainer`` every ``progress_every_epochs`` epochs or
        ``progress_every_seconds`` seconds, whichever comes first (and at the last epoch); the tqdm bars are for
        terminals.
        """
        if not (resume and self.try_resume()):
            self.history, self._best_per_user = [], {}
        self.write_log()  # once: the log holds exactly the checkpoint's epochs (none of a rolled-back epoch)
        done = len(self.history) >= self.cfg.max_epochs or (self.history and self.should_stop())
        epochs = tqdm(range(len(self.history), self.cfg.max_epochs), desc=f"{self.meta.get('model', 'train')}",
                      initial=len(self.history), total=self.cfg.max_epochs, disable=not self.progress or done)
        t_start, first = time.perf_counter(), len(self.history)
        last_log_t, last_log_epoch = t_start, first
        for epoch in ([] if done else epochs):
            lr = self.optimizer.param_groups[0]["lr"]
            loss, secs = self.train_epoch(epoch)
            t0 = time.perf_counter()
            extra = self.model.after_epoch(epoch)
            hook_secs = time.perf_counter() - t0
            self.scheduler.step()
            valid, test, eval_secs = self.evaluate()
            entry = {"epoch": epoch, "loss": loss, "lr": lr, "train_seconds": secs, "hook_seconds": hook_secs,
                     "eval_seconds": eval_secs, "valid": valid, "test": test, **({"extra": extra} if extra else {})}
            self.history.append(entry)
            track_best(self._best_per_user, entry, self.history, self.cfg, self._last_per_user, self.model,
                       self.run_dir)
            self.save_checkpoint()
            self.write_log(entry)
            if on_epoch:
                on_epoch(entry)
            epochs.set_postfix({"loss": f"{loss:.4f}", self.cfg.valid_metric: f"{valid[self.cfg.valid_metric]:.4f}"})
            stop, now = self.should_stop(), time.perf_counter()
            due = (epoch + 1 - last_log_epoch >= self.progress_every_epochs
                   or now - last_log_t >= self.progress_every_seconds)
            if due or stop or epoch + 1 >= self.cfg.max_epochs:
                timed = len(self.history) - first  # epochs trained in this session (elapsed covers only them)
                log.info("%s", progress_line(self.history, self.cfg, self.meta, now - t_start, timed, stopped=stop))
                last_log_t, last_log_epoch = now, epoch + 1
            if stop:
                break
        return self.save_result()

    def write_log(self, entry: dict[str, Any] | None = None) -> None:
        """``log.jsonl`` in the run folder, one JSON line per epoch: append ``entry``, or (without one) rewrite
        the file from the history (at the start of ``fit``, so a resumed run drops lines of unsaved epochs)."""
        if self.run_dir is None:
            return
        import json

        path = self.run_dir / "log.jsonl"
        if entry is None:
            write_text(path, "".join(json.dumps(h) + "\n" for h in self.history))
        else:
            with open(path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    # -- results -----------------------------------------------------------------------------------
    def result(self) -> dict[str, Any]:
        """The run's summary (writes nothing): metrics at the best-valid epoch, the official test-selected
        metrics, timings, config and the history. :meth:`save_result` adds the ``artifacts`` file it writes."""
        h, c = self.history, self.cfg
        if not h:
            raise TrainingError("no epoch was trained (max_epochs 0?); fix: set max_epochs >= 1")
        sel = by_valid(h, c.valid_metric, c.patience)
        off = official_test_rule(h, c.official_stopping_step)
        train_secs = [e["train_seconds"] for e in h]
        return {**self.meta, "seed": c.seed, "device": self.device.type, "best_epoch": sel.best_epoch,
                "epochs_run": len(h), "valid": h[sel.best_epoch]["valid"], "test": h[sel.best_epoch]["test"],
                "selected_by_test_epoch": off.best_epoch, "test_selected_by_test": h[off.best_epoch]["test"],
                "valid_selected_by_test": h[off.best_epoch]["valid"],
                "seconds_per_epoch": float(np.mean(train_secs)),
                "seconds_per_eval": float(np.mean([e["eval_seconds"] for e in h])),
                "config": self.config, "switches": dict(self.switches), **run_metadata(self.device), "history": h}

    def save_result(self) -> dict[str, Any]:
        """Write the run's evidence files and the model's artifacts (``artifacts.pt``, if it has any) to the run
        folder; return the result (with ``artifacts`` naming that file). Without a run folder, only return it.
        ``result.json`` has one writer, the run store (:func:`r2mr.runs.store.write`), which validates it."""
        res = self.result()
        if self.run_dir is None:
            return res
        res.update(evidence_fields(self.run_dir, self._best_per_user, res["best_epoch"], res["selected_by_test_epoch"]))
        artifacts = self.model.artifacts()
        if artifacts:
            save_torch(artifacts, self.run_dir / "artifacts.pt")
            res["artifacts"] = "artifacts.pt"  # relative to the run folder (see r2mr.core.atomic_io.result_path)
        return res
