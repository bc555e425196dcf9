"""The evidence archive: a stored run round-trips through it, the store reads through it (no retraining), an
edited or misnamed entry is refused, export/import move runs between archives, and a retrained archived run
gives its archived numbers bit for bit."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from r2mr.cli import archive_commands as archive_cli
from r2mr.core.errors import ConfigError
from r2mr.runs import archive, experiment

R2MR_TINY = dict(dim=16, rw_hidden=(8,), rw_latent=8, rw_codebook=8, rw_code_dim=4, rw_prompt_dim=8,
                 rw_disc_hidden=(8,), rw_first_epochs=1, rw_epochs=1, rewrite_every=1, max_rounds=1)


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    runs, root = tmp_path / "runs", tmp_path / "evidence"
    monkeypatch.setenv("R2MR_RUNS_DIR", str(runs))
    monkeypatch.setenv(archive.ARCHIVE_ENV, str(root))
    return runs, root


def _train(small_root: Path, model: str = "lightgcn", **kw) -> dict:
    overrides = R2MR_TINY if model == "r2mr" else {"embedding_size": 16}
    return experiment.train(model, "small", data_dir=small_root, max_epochs=3, progress=False, seed=7,
                            overrides=overrides, **kw)


def test_add_then_the_store_reads_through_the_archive(small_root, stores):
    runs, root = stores
    first = _train(small_root, "r2mr")
    assert archive_cli.add_from_store(runs, root) == (1, 0)
    assert archive_cli.add_from_store(runs, root) == (0, 1)
    with np.load(Path(first["run_dir"]) / "per_user.npz") as z:
        before = {k: z[k] for k in z.files if ".test." in k or k.startswith("test.") or k.endswith("epoch")}
    shutil.rmtree(runs)  # a fresh clone: only the archive
    found = experiment.find("r2mr", "small", data_dir=small_root, seed=7, max_epochs=3, overrides=R2MR_TINY)
    assert found["source"] == "archive" and found["test"] == first["test"]
    again = _train(small_root, "r2mr")
    assert again["cached"] and again["source"] == "archive"
    for field in ("valid", "test", "test_selected_by_test", "best_epoch", "selected_by_test_epoch", "history"):
        assert again[field] == first[field], field
    assert not (Path(again["run_dir"]) / "checkpoint.pt").exists()  # restored, not retrained
    with np.load(Path(again["run_dir"]) / "per_user.npz") as pu:
        assert set(before) <= set(pu.files)
        for k, v in before.items():  # per-user metrics kept as float16: within its precision
            np.testing.assert_allclose(pu[k], v, rtol=1e-3, atol=1e-4, err_msg=k)
    art = experiment.train("r2mr", "small", data_dir=small_root, max_epochs=3, progress=False, seed=7,
                           overrides=R2MR_TINY)
    assert (Path(art["run_dir"]) / art["artifacts"]).is_file()


def test_retrain_reproduces_archived_numbers_bit_for_bit(small_root, stores):
    runs, root = stores
    for model in ("bpr", "lightgcn", "r2mr"):
        _train(small_root, model)
    archive_cli.add_from_store(runs, root)
    shutil.rmtree(runs)
    for path in archive.entries(root):
        entry = archive.read(path, root)
        model = entry.doc["fields"]["model"]
        fresh = _train(small_root, model, resume=False)  # --retrain: trains here, ignoring the archive
        assert "source" not in fresh and not fresh["cached"]
        rec = entry.doc["record"]
        assert [h["test"] for h in fresh["history"]] == [h["test"] for h in rec["history"]], model
        assert [h["loss"] for h in fresh["history"]] == [h["loss"] for h in rec["history"]], model
        assert fresh["best_epoch"] == rec["best_epoch"]


def test_edited_or_misnamed_entries_are_refused(small_root, stores, tmp_path):
    runs, root = stores
    _train(small_root)
    archive_cli.add_from_store(runs, root)
    path = archive.entries(root)[0]
    good = path.read_bytes()
    entry = archive.read(path, root)
    entry.doc["record"]["test"]["recall@20"] += 0.01  # a hand-edited metric, old digest
    path.write_bytes(archive.to_bytes(entry))
    with pytest.raises(ConfigError, match="digest"):
        archive.read(path, root)
    path.write_bytes(good)
    renamed = path.with_name("bpr-000000000000-seed7.npz")
    path.rename(renamed)
    with pytest.raises(ConfigError, match="holds run"):
        archive.read(renamed, root)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not an archive entry"):
        archive.read(tmp_path / "junk.npz", root)


def test_export_then_import_into_another_archive(small_root, stores, tmp_path):
    runs, root = stores
    _train(small_root, "bpr")
    _train(small_root, "lightgcn")
    archive_cli.add_from_store(runs, root)
    out = tmp_path / "campaign.zip"
    assert archive_cli.export(root, out, None, "bpr", 16) == 1
    with pytest.raises(ConfigError, match="exists"):
        archive_cli.export(root, out, None, None, 16)
    other = tmp_path / "other"
    assert archive_cli.import_file(out, other) == (1, 0)
    assert archive_cli.import_file(out, other) == (0, 1)
    # a member whose name does not match its run is refused before anything is written
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(bad, "w") as zout:
        (name,) = zin.namelist()
        zout.writestr(name.replace("bpr-", "lightgcn-"), zin.read(name))
    fresh = tmp_path / "fresh"
    with pytest.raises(ConfigError, match="holds run"):
        archive_cli.import_file(bad, fresh)
    assert not fresh.exists()
    with pytest.raises(ConfigError, match="over --max-mib"):
        archive_cli.export(root, tmp_path / "small.zip", None, None, 1e-6)


def test_plan_counts_archived_runs_and_run_one_restores_them(small_root, stores):
    from r2mr.cli.plan_commands import archive_line, plan_status
    from r2mr.runs.notebook_runs import run_one
    from r2mr.runs.plan import PlannedRun
    from r2mr.runs.plan_specs import Spec

    runs, root = stores
    planned = [PlannedRun("small", Spec.of("BPR", "bpr", embedding_size=16), 7, "quick", 2)]
    assert [st for st, _ in plan_status(planned, str(small_root), "cpu")] == ["to train"]
    first = run_one(planned[0].spec, "small", 7, data_dir=small_root, epochs=2)
    archive_cli.add_from_store(runs, root)
    shutil.rmtree(runs)
    status = plan_status(planned, str(small_root), "cpu")
    assert [st for st, _ in status] == ["archived"] and not runs.exists()  # plan writes nothing
    assert archive_line(status, 0.0).startswith("1 runs read from the evidence archive")
    again = run_one(planned[0].spec, "small", 7, data_dir=small_root, epochs=2)
    assert again.status == "cached" and again.result["source"] == "archive"
    assert again.result["test"] == first.result["test"]
    assert [st for st, _ in plan_status(planned, str(small_root), "cpu")] == ["stored"]


def test_no_train_reads_back_archived_runs_and_trains_nothing(small_root, stores, monkeypatch):
    from r2mr.cli.main import main
    from r2mr.core.paths import NO_TRAIN_ENV
    from r2mr.runs.notebook_runs import NOT_ARCHIVED, run_one
    from r2mr.runs.plan_specs import Spec

    runs, root = stores
    bpr, lgcn = Spec.of("BPR", "bpr", embedding_size=16), Spec.of("LightGCN", "lightgcn", embedding_size=16)
    first = run_one(bpr, "small", 7, data_dir=small_root, epochs=2)
    archive_cli.add_from_store(runs, root)
    shutil.rmtree(runs)
    monkeypatch.setenv(NO_TRAIN_ENV, "1")
    missing = run_one(lgcn, "small", 7, data_dir=small_root, epochs=2)
    assert missing.status == NOT_ARCHIVED and not missing.ok
    assert not any(runs.glob("small/lightgcn-*"))  # nothing trained, no folder made
    back = run_one(bpr, "small", 7, data_dir=small_root, epochs=2)
    assert back.status == "cached" and back.result["test"] == first.result["test"]
    code = main(["run-all", "--no-train", "--train-only", "--data-dir", str(small_root), "--datasets", "small"])
    assert code == 2  # asks to train and not to train: one error line
