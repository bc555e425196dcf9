"""Archived evidence reproduces: three cheap archived runs (BPR, LightGCN, VBPR, on any data set found under the
data root) are retrained here for their first epochs with their archived resolved configuration and thread count,
and every loss and every valid and test metric equals the archived history (the first epochs of a run do not
depend on its epoch limit): bit for bit where the archived run names this machine's processor model and kernel
path (its ``cpu`` field), within a stated tolerance elsewhere. The embedded synthetic set is generated when
absent (as ``run_all.sh`` does); a run on another data set is skipped where that set is not under the data root
(``$R2MR_DATA_DIR`` or the repository's ``data/``)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from r2mr.core.processor import processor_id
from r2mr.data.discovery import SYNTHETIC, ensure_synthetic, find_dataset_root, load_dataset_named
from r2mr.runs import archive, experiment

CHEAP = ("bpr", "lightgcn", "vbpr")
EPOCHS = 2
# Another processor model (or a record made before runs stored ``cpu``): MKL's kernels sum in another order
# (r2mr.core.processor). Measured on two AMD EPYC models: 2e-8 relative on VBPR's second-epoch loss, metrics
# equal. The bounds leave room for that drift, and none for a changed model, sampler or metric.
LOSS_RTOL, METRIC_ATOL = 1e-5, 1e-3


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
    same_processor = rec.get("cpu") == processor_id()
    for mine, archived in zip(res["history"], rec["history"][:EPOCHS], strict=True):
        if same_processor:
            assert mine["loss"] == archived["loss"]
            assert mine["valid"] == archived["valid"] and mine["test"] == archived["test"]
        else:
            assert mine["loss"] == pytest.approx(archived["loss"], rel=LOSS_RTOL)
            for split in ("valid", "test"):
                assert mine[split] == pytest.approx(archived[split], abs=METRIC_ATOL), split
