"""The trainer's configuration: one typed, validated dataclass (every field is checked against its rule in
:mod:`r2mr.core.config_rules`); the resolved values are part of every run's store key."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config_rules import Validated


@dataclass
class TrainConfig(Validated):
    batch_size: int = 2048  # MMRec train_batch_size
    lr: float = 1e-3  # learning rate
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0  # optimiser weight decay (MMRec: 0; R2MR's AdamW: 0.01)
    # exp: lr * lr_decay ** (epoch / lr_decay_every); linear: lr * (1 - epoch / lr_linear_epochs)
    lr_schedule: str = "exp"
    lr_decay: float = 1.0  # exp schedule base (1.0 = constant, MMRec default [1.0, 50])
    lr_decay_every: int = 50  # exp schedule period in epochs
    lr_linear_epochs: int = 70  # linear schedule: the factor reaches 0 at this epoch
    lr_clamp: bool = True  # linear schedule: clamp the factor at 0 (False reproduces the official negative LR)
    max_epochs: int = 1000  # MMRec epochs
    patience: int = 20  # MMRec stopping_step on the validation metric
    valid_metric: str = "recall@20"  # metric for validation selection and early stopping
    stop_rule: str = "valid"  # valid | official (test-based, spec 9.3) | both (run until both have stopped)
    official_stopping_step: int = 40  # counter limit of the official test-based rule
    topk: tuple[int, ...] = (10, 20, 50)  # cut-offs evaluated
    eval_batch_size: int = 4096  # users per evaluation batch
    negatives: bool = True  # draw one negative per positive (BM3 trains without)
    seed: int = 999  # MMRec / official seed
