"""The model contract the trainer and evaluator rely on (nothing else is called).

* ``loss(batch) -> scalar``: the training objective of one batch.
* ``final_embeddings() -> (users (U, d), items (I, d))``: representations whose dot product scores;
  ``scorer()`` wraps them (override it for other scoring rules).
* optional hooks: ``on_epoch_start(epoch)`` (before the epoch's first batch) and
  ``after_epoch(epoch) -> dict`` (after training, before the LR step and evaluation).
* optional: ``extra_state()`` / ``load_extra_state()`` for state outside ``state_dict()`` and the
  trainer's optimiser (checkpointed); ``train_defaults`` to override :class:`TrainConfig` defaults;
  ``dataset_defaults`` for published per-data-set hyper-parameters (applied before user overrides);
  ``artifacts()`` for extra results saved with the run.
* ``maths_version``: bump it when a model's maths changes (loss, forward pass, initialisation: anything its
  config does not say): stored results are keyed on it, so results of the old maths are no longer found.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..data.kernels import dot_scores
from ..data.sampler import Batch


class Recommender(nn.Module):
    """Base class; subclasses set ``Config`` (a dataclass of hyper-parameters with defaults)."""

    Config: ClassVar[type]
    train_defaults: ClassVar[dict[str, Any]] = {}  # overrides of TrainConfig defaults for this model
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = {}  # per-data-set published values (model or train keys)
    needs_features: ClassVar[bool] = False
    maths_version: ClassVar[int] = 1  # bump when a model's maths changes: the result store keys on it

    def __init__(self, ds: Dataset, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_users, self.n_items = ds.n_users, ds.n_items

    @classmethod
    def resolved(cls, cfg: Any) -> Any:
        """``cfg`` with every value the model fills in itself (e.g. a variant's presets) made explicit."""
        return cfg

    @classmethod
    def requires_features(cls, cfg: Any) -> bool:
        """Whether this configuration needs the data set's feature files (default: ``needs_features``)."""
        return cls.needs_features

    def loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """users (B,) -> scores (B, n_items), from embeddings computed once per evaluation."""
        users, items = self.final_embeddings()
        return lambda u: dot_scores(users[u], items)  # users[u] @ items.T, item-major where that is faster

    def on_epoch_start(self, epoch: int) -> None:
        """Hook before the first batch of ``epoch``."""

    def after_epoch(self, epoch: int) -> dict[str, Any]:
        """Hook after training ``epoch`` (before the LR step and evaluation); returns values to log."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """State outside ``state_dict()`` and the trainer's optimiser that a resumed run needs."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` returned."""

    def artifacts(self) -> dict[str, Any]:
        """Extra results saved with the run (e.g. per-item quality scores); JSON-able or tensors."""
        return {}


def xavier_uniform_table(rows: int, dim: int) -> nn.Parameter:
    """Embedding table with Xavier-uniform init over the whole matrix (MMRec convention)."""
    return nn.Parameter(nn.init.xavier_uniform_(torch.empty(rows, dim)))


def xavier_normal_table(rows: int, dim: int) -> nn.Parameter:
    """Embedding table with Xavier-normal init over the whole matrix (MMRec convention)."""
    return nn.Parameter(nn.init.xavier_normal_(torch.empty(rows, dim)))


def feature_tables(features: dict[str, np.ndarray], trainable: bool = True) -> nn.ParameterDict:
    """One table per modality initialised with the raw features (n_items, d_m), trainable unless told otherwise."""
    return nn.ParameterDict({m: nn.Parameter(torch.as_tensor(x, dtype=torch.float32).clone(), requires_grad=trainable)
                             for m, x in features.items()})
