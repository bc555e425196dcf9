"""The trainer keeps per-user metrics of the selected epochs (also across a resume) in per_user.npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from r2mr.data import load_dataset
from r2mr.evaluation.evaluator import load_per_user
from r2mr.runs.experiment import make_configs
from r2mr.training.runtime import seed_everything
from r2mr.training.trainer import Trainer

from .conftest import fit_killed_after


def _trainer(ds, run_dir: Path, **kw) -> Trainer:
    cls, m, t = make_configs("bpr", overrides={"batch_size": 512}, max_epochs=6, **kw)
    seed_everything(t.seed)
    return Trainer(cls(ds, m), ds, t, "cpu", run_dir, progress=False)


def test_per_user_of_selected_epochs_survive_resume(small_root: Path, tmp_path: Path) -> None:
    ds = load_dataset("small", small_root)
    full = _trainer(ds, tmp_path / "full").fit()
    assert full["per_user"] == "per_user.npz"
    pu = load_per_user(tmp_path / "full" / full["per_user"])
    assert pu["by_valid"]["epoch"] == full["best_epoch"] and pu["by_test"]["epoch"] == full["selected_by_test_epoch"]
    for rule, res in (("by_valid", full["test"]), ("by_test", full["test_selected_by_test"])):
        t = pu[rule]["test"]
        assert len(t["users"]) == len(np.unique(ds.test.users)) == len(t["recall@20"])
        assert float(torch.from_numpy(t["recall@20"]).mean()) == res["recall@20"]  # same numbers as the means
        assert t["ndcg@20"].mean() == pytest.approx(res["ndcg@20"], abs=1e-12)
    assert pu["by_valid"]["valid"]["recall@20"].mean() == pytest.approx(full["valid"]["recall@20"], abs=1e-12)

    fit_killed_after(_trainer(ds, tmp_path / "cut"), 3)
    resumed = _trainer(ds, tmp_path / "cut").fit()
    back = load_per_user(tmp_path / "cut" / resumed["per_user"])
    for rule in ("by_valid", "by_test"):
        assert back[rule]["epoch"] == pu[rule]["epoch"]
        for split in ("valid", "test"):
            for key, v in pu[rule][split].items():
                assert np.array_equal(back[rule][split][key], v), (rule, split, key)


def test_r2mr_saves_best_valid_and_pre_rewrite_reviewer_states(small_root: Path, tmp_path: Path) -> None:
    from r2mr.runs.experiment import train
    from tests.test_r2mr_train import FAST

    res = train("r2mr", "small", data_dir=small_root, max_epochs=5, device="cpu", progress=False,
                overrides=FAST, run_dir=tmp_path / "r")
    best = torch.load(tmp_path / "r" / res["artifacts_best"], weights_only=True)
    assert res["artifacts_best"] == "artifacts_best.pt" and best["epoch"] == res["best_epoch"]
    final = torch.load(res["artifacts"] if Path(res["artifacts"]).is_absolute() else tmp_path / "r" / res["artifacts"],
                       weights_only=True)
    before = final["before_rewrite"]
    assert before["epoch"] == 2  # the first round ran after epoch 2
    assert before["scores"].shape == final["scores"].shape and not any(v.any() for v in before["rewritten"].values())
    assert any(v.any() for v in final["rewritten"].values())  # rows were rewritten after the snapshot
    assert not torch.equal(before["scores"], final["scores"])
    assert best["epoch"] < 2  # on this set the best valid epoch precedes round 1: no rewrite in that state
    assert best["before_rewrite"] is None and not any(v.any() for v in best["rewritten"].values())
    assert not torch.equal(best["scores"], final["scores"])


def test_significance_table_from_real_runs(small_root: Path, tmp_path: Path) -> None:
    from r2mr.report.significance import against, table_from_results
    from r2mr.runs.experiment import train

    groups = {}
    for model in ("bpr", "lightgcn"):
        groups[model] = []
        for seed in (1, 2):
            folder = tmp_path / f"{model}-{seed}"
            res = train(model, "small", data_dir=small_root, max_epochs=2, device="cpu", progress=False, seed=seed,
                        overrides={"batch_size": 512}, run_dir=folder)
            groups[model].append((res, folder))
    table = table_from_results(groups, against("lightgcn", ["bpr"]) + [("bpr", "bpr")])
    row = table.loc[("lightgcn", "bpr")]
    n_test_users = len(np.unique(load_dataset("small", small_root).test.users))
    assert row["n users"] == n_test_users and row["n seeds"] == 2
    means = {m: np.mean([r["test"]["recall@20"] for r, _ in groups[m]]) for m in groups}
    assert row["diff"] == pytest.approx(means["lightgcn"] - means["bpr"])
    assert 0 <= row["p wilcoxon"] <= row["p wilcoxon (Holm)"] <= 1
    assert table.loc[("bpr", "bpr"), "p wilcoxon"] == 1.0 and table.loc[("bpr", "bpr"), "sig t-test"] == "n.s."
