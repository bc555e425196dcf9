"""Runs stored before the layered-package move are still found after it (issue 20, item 7).

``tests/fixtures/premove_store/`` holds the records (``key.json``, ``result.json``, ``per_user.npz``) that
the flat-layout package (commit 1eafb6c, modules such as ``r2mr/experiment.py`` and ``r2mr/train.py``) wrote for
BPR and VBPR, one epoch, seed 0, on the data set :func:`write_tiny` builds. The store key hashes the model name,
the resolved config, the data fingerprint, the seed and the maths version, nothing about module paths, so the
same request must reach the same folder and read back the same record; retraining must give the same numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from r2mr.runs import experiment

FIXTURE = Path(__file__).parent / "fixtures" / "premove_store"


def write_tiny(folder: Path) -> None:
    """40 users x 60 items, 8 interactions each (6 train, 1 valid, 1 test), 8-d image and 4-d text features."""
    rng = np.random.default_rng(20)
    rows = []
    for u in range(40):
        items = rng.choice(60, size=8, replace=False)
        rows += [(u, int(i), 0 if k < 6 else 1 if k == 6 else 2) for k, i in enumerate(items)]
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=["userID", "itemID", "x_label"]).to_csv(folder / "tiny.inter", sep="\t", index=False)
    np.save(folder / "image_feat.npy", rng.normal(size=(60, 8)).astype(np.float32))
    np.save(folder / "text_feat.npy", rng.normal(size=(60, 4)).astype(np.float32))


@pytest.fixture
def stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root with ``tiny/`` and a runs folder holding a copy of the pre-move records."""
    write_tiny(tmp_path / "data" / "tiny")
    shutil.copytree(FIXTURE, tmp_path / "runs")
    monkeypatch.setenv("R2MR_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


@pytest.mark.parametrize("model", ["bpr", "vbpr"])
def test_a_run_stored_before_the_move_is_found_after_it(stored: Path, model: str) -> None:
    (folder,) = (stored / "runs" / "tiny").glob(f"{model}-*")
    old = json.loads((folder / "result.json").read_text())
    kwargs = dict(data_dir=stored / "data", device="cpu", seed=0, max_epochs=1)
    assert experiment.run_folder(model, "tiny", **kwargs) == folder  # same key, same folder
    rec = experiment.find(model, "tiny", **kwargs)
    assert rec is not None and rec["key"] == old["key"] and rec["valid"] == old["valid"]
    again = experiment.train(model, "tiny", **kwargs, progress=False)  # read back, not retrained
    assert again["cached"] and again["test"] == old["test"]


def test_retraining_after_the_move_gives_the_stored_numbers(stored: Path) -> None:
    """Same seed, same numbers: the moved code recomputes the pre-move record (CPU)."""
    (folder,) = (stored / "runs" / "tiny").glob("bpr-*")
    old = json.loads((folder / "result.json").read_text())
    new = experiment.train("bpr", "tiny", data_dir=stored / "data", device="cpu", seed=0, max_epochs=1,
                           resume=False, progress=False)
    assert not new.get("cached") and new["key"] == old["key"]
    for split in ("valid", "test"):
        assert new[split] == pytest.approx(old[split], rel=1e-12, abs=1e-15)
