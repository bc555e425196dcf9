"""Archived evidence reproduces: three cheap archived runs (BPR, LightGCN, VBPR, on any data set found under the
data root) are retrained here for their first epochs with their archived resolved configuration and thread count,
and every loss and every valid and test metric equals the archived history bit for bit (the first epochs of a
run do not depend on its epoch limit). The embedded synthetic set is generated when absent (as ``run_all.sh``
does); a run on another data set is skipped where that set is not under the data root (``$R2MR_DATA_DIR`` or
the repository's ``data/``)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from r2mr.data.discovery import SYNTHETIC, ensure_synthetic, find_dataset_root, load_dataset_named
from r2mr.runs import archive, experiment

CHEAP = ("bpr", "lightgcn", "vbpr")
EPOCHS = 2


@functools.lru_cache(maxsize=1)
def _cheap_entries(n: int = 3) -> list[archive.Entry]:
    out, seen = [], set()
    if any(p.parent.name == SYNTHETIC for p in archive.entries()):
        ensure_synthetic(None)  # deterministic: the archived runs' fingerprint is checked below
    for path in archive.entries():
        model, dataset = path.name.split("-", 1)[0], path.parent.name
        if model in CHEAP and (model, dataset) not in seen and find_dataset_root(dataset) is not None:
            out.append(archive.read(path))
            seen.add((model, dataset))
        if len(out) == n:
            break
    return out


@pytest.mark.parametrize("index", range(3))
def test_archived_run_retrains_bit_for_bit(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = _cheap_entries()
    if index >= len(found):
        pytest.skip("no cheap archived run whose data set is under the data root")
    entry = found[index]
    fields, rec = entry.doc["fields"], entry.doc["record"]
    monkeypatch.setenv(archive.ARCHIVE_ENV, str(tmp_path / "no-archive"))
    ds = load_dataset_named(fields["dataset"], None, features=fields["model"] == "vbpr")
    assert experiment.fingerprint(ds) == fields["data"], "the data set differs from the archived run's"
    threads = torch.get_num_threads()
    torch.set_num_threads(rec.get("threads", 1))
    try:
        res = experiment.train(fields["model"], ds, overrides=dict(fields["config"]), seed=fields["seed"],
                               max_epochs=EPOCHS, device="cpu", run_dir=tmp_path / "run", progress=False)
    finally:
        torch.set_num_threads(threads)
    for mine, archived in zip(res["history"], rec["history"][:EPOCHS], strict=True):
        assert mine["loss"] == archived["loss"]
        assert mine["valid"] == archived["valid"] and mine["test"] == archived["test"]
