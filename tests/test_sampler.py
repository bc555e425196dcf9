"""Negative sampling: never a training item of the user, only items seen in training, reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from r2mr.data import load_dataset
from r2mr.data.sampler import BPRSampler


def test_negatives_valid_and_epoch_covers_pairs(small_root: Path) -> None:
    ds = load_dataset("small", small_root, features=False)
    s = BPRSampler(ds, batch_size=333, seed=1)
    train = set(zip(ds.train.users.tolist(), ds.train.items.tolist()))
    seen_items = set(ds.train.items.tolist())
    batches = list(s)
    assert len(batches) == len(s) == -(-len(train) // 333)
    pairs = [(u, i) for b in batches for u, i in zip(b.users.tolist(), b.pos.tolist())]
    assert sorted(pairs) == sorted(train)
    for b in batches:
        for u, j in zip(b.users.tolist(), b.neg.tolist()):
            assert (u, j) not in train and j in seen_items


def test_dense_user_needs_redraws() -> None:
    """A user who has almost every item forces many rejections; all must still be valid."""
    from r2mr.data import Dataset, Split

    users = np.array([0] * 9 + [1], dtype=np.int64)
    items = np.array(list(range(9)) + [9], dtype=np.int64)
    ds = Dataset("d", 2, 10, Split(users, items), Split(users[:0], items[:0]), Split(users[:0], items[:0]))
    s = BPRSampler(ds, batch_size=4, seed=0)
    negs = s.sample_negatives(torch.zeros(1000, dtype=torch.long))
    assert (negs == 9).all()


def test_same_seed_same_batches(small_root: Path) -> None:
    ds = load_dataset("small", small_root, features=False)
    a, b = BPRSampler(ds, 256, seed=3), BPRSampler(ds, 256, seed=3)
    for x, y in zip(a, b):
        assert torch.equal(x.users, y.users) and torch.equal(x.neg, y.neg)
    state = a.state_dict()
    first = [x.neg for x in a]
    a.load_state_dict(state)
    assert all(torch.equal(x.neg, y) for x, y in zip(a, first))


def test_no_negatives_mode(small_root: Path) -> None:
    ds = load_dataset("small", small_root, features=False)
    assert next(iter(BPRSampler(ds, 64, negatives=False))).neg is None
