"""Training batches: shuffled (user, positive) pairs with vectorised uniform negative sampling.

Negatives are drawn uniformly from the items that occur in the training split and redrawn while they
are in the user's training history (MMRec's rule), all in torch with one ``torch.Generator`` whose state
is checkpointed, so a resumed run draws the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from . import Dataset


@dataclass
class Batch:
    """One training batch; every tensor has shape (B,)."""

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.users.to(device), self.pos.to(device), None if self.neg is None else self.neg.to(device))


def pair_keys(users: torch.Tensor, items: torch.Tensor, n_items: int) -> torch.Tensor:
    """Unique int64 key per (user, item) pair."""
    return users.long() * n_items + items.long()


def contains(sorted_keys: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Boolean mask: which ``keys`` occur in ``sorted_keys`` (1-D, ascending)."""
    pos = torch.searchsorted(sorted_keys, keys).clamp_(max=len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


class BPRSampler:
    """Iterates over one epoch of batches; ``len()`` is the number of batches."""

    def __init__(self, ds: Dataset, batch_size: int, negatives: bool = True, seed: int = 0) -> None:
        self.n_items = ds.n_items
        self.users = torch.from_numpy(ds.train.users.copy())  # (E,)
        self.items = torch.from_numpy(ds.train.items.copy())  # (E,)
        self.keys = pair_keys(self.users, self.items, ds.n_items).sort().values  # (E,)
        self.candidates = torch.from_numpy(np.unique(ds.train.items))  # items seen in training
        self.batch_size = batch_size
        self.negatives = negatives
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def sample_negatives(self, users: torch.Tensor) -> torch.Tensor:
        """One negative per user (B,), never in that user's training items."""
        def draw(n):
            return self.candidates[torch.randint(len(self.candidates), (n,), generator=self.generator)]
        neg = draw(len(users))
        bad = contains(self.keys, pair_keys(users, neg, self.n_items))
        while bad.any():
            neg[bad] = draw(int(bad.sum()))
            bad[bad.clone()] = contains(self.keys, pair_keys(users[bad], neg[bad], self.n_items))
        return neg

    def __iter__(self) -> Iterator[Batch]:
        perm = torch.randperm(len(self.users), generator=self.generator)
        users, items = self.users[perm], self.items[perm]
        neg = self.sample_negatives(users) if self.negatives else None
        for s in range(0, len(users), self.batch_size):
            sl = slice(s, s + self.batch_size)
            yield Batch(users[sl], items[sl], None if neg is None else neg[sl])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
