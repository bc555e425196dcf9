"""Issue 22, store records of an older schema: migrated where the missing fields are exactly implied, else
reported by ``plan`` and by ``run-all`` before anything trains, with a fix that recomputes only those runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from r2mr.cli import pipeline
from r2mr.cli import plan_commands as plan_cli
from r2mr.cli.main import main
from r2mr.core import paths
from r2mr.data.synth import SynthConfig, write
from r2mr.runs import experiment, store

from .faults import tiny_plan
from .test_hardening import one_error_line

ARGS = ["--datasets", "tiny", "--device", "cpu", "--seeds", "1,2", "--epochs", "2", "--notebooks", "03"]


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(data root, store) with the 4 runs of BPR and LightGCN x seeds 1, 2 trained by ``run-all``."""
    root = tmp_path / "data"
    write(root / "tiny", SynthConfig(n_users=150, n_items=80, text_dim=8, image_dim=8, mean_interactions=8.0))
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.setattr(plan_cli, "run_plan", tiny_plan)
    monkeypatch.setattr(pipeline, "run", lambda inv, stream=None: [])
    assert main(["run-all", "--data-dir", str(root), *ARGS]) == 0
    return root, tmp_path / "runs"


def records(runs: Path) -> list[Path]:
    return sorted(runs.glob("tiny/*/result.json"))


def as_older_writer(path: Path, drop: tuple[str, ...]) -> dict:
    """Rewrite a record without ``drop`` and with the digest an older writer would have given it."""
    rec = json.loads(path.read_text())
    old = {k: v for k, v in rec.items() if k not in drop and k != "digest"}
    old["digest"] = store.content_digest(old)
    path.write_text(json.dumps(old))
    return rec


def test_exactly_implied_fields_are_migrated(filled: tuple[Path, Path]) -> None:
    root, runs = filled
    path = records(runs)[0]
    rec = as_older_writer(path, ("epochs_run", "maths_version", "model", "seed"))
    planned = tiny_plan(SimpleNamespace(datasets=["tiny"], seeds=[1, 2], epochs=2))
    status = plan_cli.plan_status(planned, str(root), "cpu")
    assert [st for st, _ in status] == ["stored"] * 4
    found = next(res for _, res in status if res["run_dir"] == str(path.parent))
    assert found["epochs_run"] == rec["epochs_run"] == len(found["history"])
    assert (found["maths_version"], found["model"], found["seed"]) == (rec["maths_version"], rec["model"],
                                                                       rec["seed"])
    edited = json.loads(path.read_text())
    path.write_text(json.dumps({**edited, "valid": {}}))  # an older record edited since: its digest fails
    run = next(r for r in planned if r.model == found["model"] and r.seed == found["seed"])
    with pytest.raises(store.RecordError, match="field 'model' is missing"):  # not exact: not migrated
        experiment.find(run.model, "tiny", data_dir=root, device="cpu", seed=run.seed, max_epochs=2,
                        overrides=run.overrides)


def test_older_record_is_reported_before_anything_trains(filled: tuple[Path, Path],
                                                         capsys: pytest.CaptureFixture) -> None:
    root, runs = filled
    capsys.readouterr()
    path = records(runs)[1]
    as_older_writer(path, ("wall_seconds",))  # not implied by anything: cannot be migrated
    assert main(["plan", "--data-dir", str(root), *ARGS]) == 0
    out = capsys.readouterr().out
    assert "4 runs: 3 stored, 0 to train, 1 stored but unreadable" in out
    assert f"1 stored run(s) cannot be read, first: {path}: field 'wall_seconds' is missing; fix: move their run " \
           f"folder(s) aside ({path.parent}) and rerun: only those runs are recomputed" in out
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()}
    assert main(["run-all", "--data-dir", str(root), *ARGS]) == 2
    one_error_line(capsys, "1 stored run(s) cannot be read", "field 'wall_seconds' is missing",
                   "fix: move their run folder(s) aside")
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()} == before  # nothing trained
    shutil.move(path.parent, runs.parent / "aside")  # the fix: only that run is recomputed
    assert main(["run-all", "--data-dir", str(root), *ARGS]) == 0
    out = capsys.readouterr().out
    assert out.count(": trained in") == 1 and len(records(runs)) == 4
