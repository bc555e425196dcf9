"""R2MR end to end through the trainer and CLI: results, artifacts, reproducibility, resume, controls."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import torch

from r2mr.core.atomic_io import load_torch, result_path
from r2mr.data import load_dataset
from r2mr.runs.experiment import make_configs, train
from r2mr.training.runtime import seed_everything
from r2mr.training.trainer import Trainer
from tests.test_train import strip_timing

from .conftest import fit_killed_after

FAST = {"batch_size": 512, "rewrite_every": 2, "rw_first_epochs": 2, "rw_epochs": 1, "rw_hidden": "[16, 32]",
        "rw_latent": 16, "rw_codebook": 32, "rw_code_dim": 4, "rw_disc_hidden": "[8, 4]", "rw_batch": 32}
FAITHFUL = {"leak_disc_grad": True, "freeze_after_first_rewrite": True, "classes_from_last_batch": True,
            "lr_clamp": False, "lr_linear_epochs": 3}


def test_result_json_artifacts_and_bit_identical_rerun(small_root: Path, tmp_path: Path) -> None:
    kw = dict(data_dir=small_root, max_epochs=5, device="cpu", progress=False, overrides=FAST)
    a = train("r2mr", "small", run_dir=tmp_path / "a", **kw)
    assert a["variant"] == "official" and a["config"]["n_perspectives"] == 1 and a["config"]["knn_hop"] is True
    assert a["test"] == a["history"][a["best_epoch"]]["test"]
    assert a["test_selected_by_test"] == a["history"][a["selected_by_test_epoch"]]["test"]
    rounds = [h["epoch"] for h in a["history"] if "extra" in h]
    assert rounds == [2, 4] and a["history"][2]["extra"]["rewrite"]["rewriter_epochs"] == 2
    art = load_torch(result_path(a))
    n_items = load_dataset("small", small_root).n_items
    assert art["scores"].shape == (n_items, 2) and art["modalities"] == ["text", "image"]
    assert ((art["scores"] >= 0) & (art["scores"] <= 1)).all() and set(art["quality"].tolist()) <= {0, 1, 2}
    assert [r["round"] for r in art["rewrite_rounds"]] == [1, 2]
    b = train("r2mr", "small", run_dir=tmp_path / "b", **kw)
    assert strip_timing(a["history"]) == strip_timing(b["history"])  # exact float equality on CPU
    assert torch.equal(art["scores"], load_torch(result_path(b))["scores"])


def test_resume_after_a_rewrite_round_is_exact(small_root: Path, tmp_path: Path) -> None:
    """Kill after epoch 2 (just after round 1, with every faithfulness flag on) and resume."""
    ds = load_dataset("small", small_root)

    def trainer(run_dir: Path) -> Trainer:
        cls, m, t = make_configs("r2mr", {**FAST, **FAITHFUL}, max_epochs=5)
        seed_everything(t.seed)
        return Trainer(cls(ds, m), ds, t, "cpu", run_dir, progress=False)

    full_trainer = trainer(tmp_path / "full")
    full = full_trainer.fit()
    assert not any(p.requires_grad for p in full_trainer.model.features.values())  # frozen after round 1

    fit_killed_after(trainer(tmp_path / "cut"), 2)
    torch.manual_seed(12345)
    resumed = trainer(tmp_path / "cut").fit()
    assert strip_timing(resumed["history"]) == strip_timing(full["history"])


def test_cli_paper_variant(small_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    sets = [x for k, v in {**FAST, "variant": "paper"}.items() for x in ("--set", f"{k}={v}")]
    subprocess.run([sys.executable, "-m", "r2mr", "train", "--model", "r2mr", "--dataset", "small", "--data-dir",
                    str(small_root), "--device", "cpu", "--max-epochs", "3", *sets, "--run-dir", str(tmp_path / "run"),
                    "--out", str(out), "--no-progress"], check=True, capture_output=True, text=True)
    res = json.loads(out.read_text())
    assert res["variant"] == "paper" and res["config"]["n_perspectives"] == 3
    cfg = res["config"]
    assert (cfg["h_source"], cfg["accept_rule"], cfg["knn_hop"]) == ("item_id", "improve", False)
    assert cfg["perspective_split"] is False
    assert {"test", "test_selected_by_test", "valid"} <= set(res)


def test_content_controls(small_root: Path, tmp_path: Path) -> None:
    """random runs without feature files (shapes from random_widths); frozen features do not move."""
    ds = load_dataset("small", small_root)
    bare = dataclasses.replace(ds, features={})
    kw = dict(max_epochs=1, device="cpu", progress=False)
    res = train("r2mr", bare, overrides={**FAST, "content": "random", "random_widths": "text:8,image:20"},
                run_dir=tmp_path / "random", **kw)
    assert res["config"]["content"] == "random" and res["epochs_run"] == 1
    cls, m, t = make_configs("r2mr", {**FAST, "content": "frozen"}, max_epochs=1)
    seed_everything(t.seed)
    model = cls(ds, m)
    before = {k: v.detach().clone() for k, v in model.features.items()}
    Trainer(model, ds, t, "cpu", None, progress=False).fit()
    assert all(torch.equal(before[k], v) for k, v in model.features.items())
    assert all(not v.requires_grad for v in model.features.values())
