"""Shared fixtures: tiny hand-made MMRec folders and a small synthetic set (fast on 2 CPU cores)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from r2mr.data.synth import SynthConfig, write

SMALL = dict(n_users=300, n_items=150, text_dim=32, image_dim=64, mean_interactions=12.0)


def write_inter(folder: Path, rows: list[tuple] | pd.DataFrame, name: str | None = None,
                columns: tuple[str, ...] = ("userID", "itemID", "x_label")) -> Path:
    """Write ``rows`` as ``<folder>/<name>.inter`` (tab-separated with header); return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=list(columns))
    path = folder / f"{name or folder.name}.inter"
    df.to_csv(path, sep="\t", index=False)
    return path


# user 0: items 0,1,2 train, 3 valid, 4 test; user 1: 0,2 train, 1 valid, 3 test; user 2: 4 train, 0 test
TOY_ROWS = [(0, 0, 0), (0, 1, 0), (0, 2, 0), (0, 3, 1), (0, 4, 2),
            (1, 0, 0), (1, 2, 0), (1, 1, 1), (1, 3, 2),
            (2, 4, 0), (2, 0, 2)]


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    """A data root with ``toy/`` (3 users, 5 items, 2-d image and 3-d text features)."""
    folder = tmp_path / "toy"
    write_inter(folder, TOY_ROWS)
    rng = np.random.default_rng(0)
    np.save(folder / "image_feat.npy", rng.normal(size=(5, 2)).astype(np.float32))
    np.save(folder / "text_feat.npy", rng.normal(size=(5, 3)).astype(np.float16))
    return tmp_path


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Torch at one thread for the test (as in a run's worker), whatever the machine's default; restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with a small synthetic set ``small/`` (about 300 users, 150 items)."""
    root = tmp_path_factory.mktemp("data")
    write(root / "small", SynthConfig(**SMALL))
    return root


class Killed(Exception):
    """Raised by :func:`fit_killed_after` to stop a run as a crash would (after a checkpoint was written)."""


def fit_killed_after(trainer, epoch: int) -> None:
    """Run ``trainer.fit`` and stop it right after ``epoch`` (0-based) was checkpointed, as a crash would."""
    def die(entry: dict) -> None:
        if entry["epoch"] == epoch:
            raise Killed

    with pytest.raises(Killed):
        trainer.fit(on_epoch=die)
