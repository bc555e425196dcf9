"""Trainer: bit-identical reruns on CPU, exact resume after a kill, schedules, failure on NaN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from r2mr.core.errors import TrainingError
from r2mr.data import load_dataset
from r2mr.runs.experiment import make_configs, train
from r2mr.training.config import TrainConfig
from r2mr.training.trainer import Trainer, lr_factor

from .conftest import fit_killed_after

TIMING = ("train_seconds", "hook_seconds", "eval_seconds")


def strip_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def test_same_seed_bit_identical(small_root: Path, tmp_path: Path) -> None:
    kw = dict(data_dir=small_root, max_epochs=3, device="cpu", progress=False, overrides={"batch_size": 512})
    a = train("lightgcn", "small", run_dir=tmp_path / "a", **kw)
    b = train("lightgcn", "small", run_dir=tmp_path / "b", **kw)
    assert strip_timing(a["history"]) == strip_timing(b["history"])  # exact float equality
    c = train("lightgcn", "small", run_dir=tmp_path / "c", seed=5, **kw)
    assert strip_timing(a["history"]) != strip_timing(c["history"])


def test_resume_after_interrupt_matches(small_root: Path, tmp_path: Path) -> None:
    ds = load_dataset("small", small_root)
    kw = dict(overrides={"batch_size": 512}, max_epochs=6)

    def trainer(run_dir: Path) -> Trainer:
        from r2mr.training.runtime import seed_everything

        cls, m, t = make_configs("bpr", **kw)
        seed_everything(t.seed)
        return Trainer(cls(ds, m), ds, t, "cpu", run_dir, progress=False)

    full = trainer(tmp_path / "full").fit()

    fit_killed_after(trainer(tmp_path / "cut"), 2)  # killed after its third epoch
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    resumed = trainer(tmp_path / "cut").fit()
    assert strip_timing(resumed["history"]) == strip_timing(full["history"])
    assert resumed["test"] == full["test"]


def test_cli_killed_midway_resumes_to_same_result(small_root: Path, tmp_path: Path) -> None:
    """SIGKILL a CLI run after its third checkpoint, rerun the same command, compare with a clean run."""
    def cmd(run_dir: Path) -> list[str]:
        return [sys.executable, "-m", "r2mr", "train", "--model", "lightgcn", "--dataset", "small", "--data-dir",
                str(small_root), "--device", "cpu", "--epochs", "8", "--set", "batch_size=256",
                "--run-dir", str(run_dir), "--no-progress", "--out", str(run_dir / "out.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd(tmp_path / "cut"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "cut" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "out.json").exists(), "run finished before it could be killed"
    subprocess.run(cmd(tmp_path / "cut"), env=env, check=True, capture_output=True)
    subprocess.run(cmd(tmp_path / "full"), env=env, check=True, capture_output=True)
    cut = json.loads((tmp_path / "cut" / "out.json").read_text())
    full = json.loads((tmp_path / "full" / "out.json").read_text())
    assert strip_timing(cut["history"]) == strip_timing(full["history"])
    assert (cut["best_epoch"], cut["test"]) == (full["best_epoch"], full["test"])


def test_cli_result_json_fields(small_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "r2mr", "train", "--model", "bpr", "--dataset", "small",
                           "--data-dir", str(small_root), "--device", "cpu", "--seed", "7", "--epochs", "2",
                           "--set", "reg_weight=0.01", "--run-dir", str(tmp_path / "run"), "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, check=True)
    assert proc.stdout.count("\n") == 1 and "bpr on small (seed 7, cpu)" in proc.stdout
    res = json.loads(out.read_text())
    for key in ("model", "dataset", "seed", "device", "best_epoch", "epochs_run", "valid", "test",
                "seconds_per_epoch", "history", "test_selected_by_test", "config"):
        assert key in res, key
    assert res["seed"] == 7 and res["epochs_run"] == 2 and res["config"]["reg_weight"] == 0.01
    assert set(res["test"]) >= {"recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@20", "map@20", "recall@50"}
    assert res["test"] == res["history"][res["best_epoch"]]["test"]


def test_finished_run_is_reused(small_root: Path, tmp_path: Path) -> None:
    kw = dict(data_dir=small_root, max_epochs=2, device="cpu", progress=False, run_dir=tmp_path / "r")
    a = train("bpr", "small", **kw)
    (tmp_path / "r" / "checkpoint.pt").unlink()
    b = train("bpr", "small", **kw)  # served from result.json, no checkpoint needed
    assert a["date"] == b["date"]


def test_changed_config_refuses_stale_checkpoint(small_root: Path, tmp_path: Path) -> None:
    from r2mr.core.errors import ConfigError

    kw = dict(data_dir=small_root, max_epochs=1, device="cpu", progress=False, run_dir=tmp_path / "r", reuse=False)
    train("bpr", "small", **kw)
    with pytest.raises(ConfigError, match="this run folder holds another run \\(differs in reg_weight\\)"):
        train("bpr", "small", overrides={"reg_weight": 0.5}, **kw)  # the folder's key file refuses it
    ds = load_dataset("small", small_root)
    cls, m, t = make_configs("bpr", {"reg_weight": 0.5}, max_epochs=1)
    with pytest.raises(ConfigError, match="checkpoint was made with another config \\(differs in reg_weight\\)"):
        Trainer(cls(ds, m), ds, t, "cpu", tmp_path / "r", progress=False).fit()  # and so does the checkpoint


def test_lr_schedules() -> None:
    lin = TrainConfig(lr_schedule="linear", lr_linear_epochs=70)
    assert lr_factor(0, lin) == 1.0 and lr_factor(35, lin) == 0.5 and lr_factor(73, lin) == 0.0
    raw = TrainConfig(lr_schedule="linear", lr_linear_epochs=70, lr_clamp=False)
    assert lr_factor(71, raw) == pytest.approx(-1 / 70)
    exp = TrainConfig(lr_decay=0.96, lr_decay_every=50)
    assert lr_factor(100, exp) == pytest.approx(0.96 ** 2)


def test_nan_loss_raises_with_context(small_root: Path) -> None:
    ds = load_dataset("small", small_root)
    cls, m, t = make_configs("bpr", {"lr": 1e30, "batch_size": 512}, max_epochs=50)
    with pytest.raises(TrainingError, match=r"non-finite loss .* at epoch \d+, batch \d+ \(last finite batch loss"):
        Trainer(cls(ds, m), ds, t, "cpu", None, progress=False).fit()


def test_result_is_pure_and_log_is_appended(small_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """log.jsonl holds one line per checkpointed epoch, also after a resume that rolls back an epoch the checkpoint
    never saw; a progress line every N epochs and at the end; result() writes nothing (save_result() does)."""
    ds = load_dataset("small", small_root)
    run = tmp_path / "run"

    def trainer() -> Trainer:
        cls, m, t = make_configs("bpr", overrides={"batch_size": 512}, max_epochs=6)
        tr = Trainer(cls(ds, m), ds, t, "cpu", run, progress=False)
        tr.progress_every_epochs = 2
        return tr

    fit_killed_after(trainer(), 1)  # killed after its second epoch
    assert [json.loads(ln)["epoch"] for ln in (run / "log.jsonl").read_text().splitlines()] == [0, 1]
    with open(run / "log.jsonl", "a") as f:  # an epoch logged but never checkpointed (killed in between)
        f.write(json.dumps({"epoch": 2, "loss": 0.0}) + "\n")
    tr = trainer()
    with caplog.at_level("INFO", logger="r2mr.training.trainer"):
        res = tr.fit()
    logged = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in logged] == list(range(6)) and logged[2]["loss"] != 0.0
    assert strip_timing(logged) == strip_timing(res["history"])
    lines = [r.getMessage() for r in caplog.records
             if r.name == "r2mr.training.trainer" and "epochs, loss" in r.getMessage()]
    assert [ln.split(" epochs")[0].split()[-1] for ln in lines] == ["4/6", "6/6"], lines
    assert "ETA <= " in lines[0] and "elapsed" in lines[0] and lines[-1].endswith("done")
    pure = {k: v for k, v in tr.result().items() if k != "date"}  # date: when result() is called
    assert pure == {k: v for k, v in res.items() if k not in ("artifacts", "artifacts_best", "per_user", "date")}
    saved = tr.save_result()
    assert not (run / "result.json").exists()  # one writer of result.json: the run store
    assert {k: v for k, v in saved.items() if k != "date"} == {k: v for k, v in res.items() if k != "date"}

