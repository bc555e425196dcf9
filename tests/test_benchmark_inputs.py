"""The benchmark helpers the GPU suite relies on: the generated graph written as an MMRec folder, and the
profiler's count of computing operators (the CPU-side proxy for kernel launches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.graphs import write_inter
from benchmarks.profile_r2mr import top_level_counts
from r2mr.data import Dataset, Split, load_dataset


def pairs(split: Split) -> set[tuple[int, int]]:
    return set(zip(split.users.tolist(), split.items.tolist()))


def test_written_graph_loads_with_its_ids_reindexed(tmp_path: Path) -> None:
    # items 3 and 7 never occur: the loader needs contiguous ids, so they are dropped and the rest renumbered
    users = np.array([0, 0, 1, 2, 2, 1, 0, 2])
    items = np.array([0, 1, 2, 4, 5, 6, 8, 1])
    ds = Dataset("gappy", 3, 9, Split(users[:5], items[:5]), Split(users[5:7], items[5:7]),
                 Split(users[7:], items[7:]))
    write_inter(ds, str(tmp_path / "gappy"))
    back = load_dataset("gappy", tmp_path, features=False)
    new_id = {old: new for new, old in enumerate([0, 1, 2, 4, 5, 6, 8])}
    assert (back.n_users, back.n_items) == (3, 7)
    for name in ("train", "valid", "test"):
        want = {(u, new_id[i]) for u, i in pairs(getattr(ds, name))}
        assert pairs(getattr(back, name)) == want, name


def test_written_graph_is_never_overwritten(tmp_path: Path) -> None:
    ds = Dataset("g", 2, 2, Split(np.array([0, 1]), np.array([0, 1])), Split(np.array([0]), np.array([1])),
                 Split(np.array([1]), np.array([0])))
    path = Path(write_inter(ds, str(tmp_path / "g")))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        write_inter(ds, str(tmp_path / "g"))
    assert path.read_bytes() == before


def test_launch_proxy_counts_computing_calls_but_not_views() -> None:
    a, b = torch.randn(4, 3), torch.randn(3, 5)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        y = torch.mm(a, b)  # computes
        y = y.view(20)  # a view: no kernel
        _ = (y + 1).sum()  # two computing calls
    top, computing = top_level_counts(prof.events())
    assert computing == 3
    assert top >= 4  # the view is a top-level call too
