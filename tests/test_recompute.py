"""Recomputing a seed-level table from the evidence archive alone: cheap runs are trained, archived, the store
is deleted (a fresh clone), the table is written from the runs the store reads back through the archive, and
:func:`r2mr.report.recompute.check` reproduces every p-value and interval from the archive; an edited table is
caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from r2mr.cli import archive_commands as archive_cli
from r2mr.core.errors import ConfigError
from r2mr.report import inference, recompute
from r2mr.runs import archive, experiment

ARMS = {"BPR": ("bpr", {"embedding_size": 16}), "BPR small": ("bpr", {"embedding_size": 8}),
        "LightGCN": ("lightgcn", {"embedding_size": 16})}
SEEDS = (1, 2)


def _train(small_root: Path, label: str, seed: int) -> dict:
    model, overrides = ARMS[label]
    return experiment.train(model, "small", data_dir=small_root, max_epochs=2, progress=False, seed=seed,
                            overrides=overrides)


@pytest.fixture
def archived(small_root, tmp_path, monkeypatch) -> Path:
    runs, root = tmp_path / "runs", tmp_path / "evidence"
    monkeypatch.setenv("R2MR_RUNS_DIR", str(runs))
    monkeypatch.setenv(archive.ARCHIVE_ENV, str(root))
    for label in ARMS:
        for seed in SEEDS:
            _train(small_root, label, seed)
    _train(small_root, "BPR", 101)  # like a tuning point: the same configuration, a seed no table reports
    assert archive_cli.add_from_store(runs, root) == (len(ARMS) * len(SEEDS) + 1, 0)
    shutil.rmtree(runs)  # a fresh clone: only the archive
    return root


def test_recompute_reproduces_a_table_written_from_the_runs(small_root, archived, tmp_path):
    groups = {label: [(res, res["run_dir"]) for res in (_train(small_root, label, s) for s in SEEDS)]
              for label in ARMS}
    assert all(res["source"] == "archive" for runs in groups.values() for res, _ in runs)
    pairs = [("LightGCN", "BPR"), ("BPR small", "BPR")]
    table = recompute.table_from_runs(groups, pairs, n_boot=500)
    assert list(table["design"]) == ["Welch", "paired by seed"]
    assert table[["p t-test", "rel lo", inference.WILCOXON]].notna().all().all()
    path = recompute.write_table(table, tmp_path / "tables" / "seed_tests.csv")
    assert recompute.check(path, archived) <= 1e-9
    assert {len(rs.seeds) for rs in recompute.archived_sets(archived).values()} == {2, 3}  # seed 101 is archived
    assert list(table["A seeds"]) == ["1 2", "1 2"]
    fresh = recompute.print_table(path, archived)
    pd.testing.assert_index_equal(fresh.index, table.index)
    for col in ("p t-test", "diff lo", "rel hi", inference.WILCOXON):
        assert fresh[col].to_numpy() == pytest.approx(table[col].to_numpy(), rel=1e-9, nan_ok=True)
    # a hand-edited p-value is caught and named
    edited = pd.read_csv(path)
    edited.loc[0, "p t-test"] = edited.loc[0, "p t-test"] * 0.5
    edited.to_csv(path, index=False)
    with pytest.raises(ConfigError, match="p t-test of LightGCN vs BPR"):
        recompute.check(path, archived)


def test_missing_runs_and_bad_files_are_one_line_errors(small_root, archived, tmp_path):
    groups = {label: [(res, res["run_dir"]) for res in (_train(small_root, label, s) for s in SEEDS)]
              for label in ("BPR", "LightGCN")}
    path = recompute.write_table(recompute.table_from_runs(groups, [("LightGCN", "BPR")], n_boot=100),
                                 tmp_path / "t.csv")
    empty = tmp_path / "empty-archive"
    with pytest.raises(ConfigError, match="no archived runs for"):
        recompute.recompute(path, empty)
    bad = tmp_path / "bad.csv"
    bad.write_text("A,B,x\nR2MR,BPR,1\n")
    with pytest.raises(ConfigError, match="no column"):
        recompute.recompute(bad, archived)
    mixed = {"BPR": groups["BPR"] + groups["LightGCN"][:1]}
    with pytest.raises(ConfigError, match="2 configurations"):
        recompute.table_from_runs(mixed, [])


def test_config_id_ignores_the_seed_only():
    base = {"lr": 0.001, "seed": 1}
    assert recompute.config_id("BPR", "x", base) == recompute.config_id("bpr", "x", {**base, "seed": 2})
    assert recompute.config_id("bpr", "x", base) != recompute.config_id("bpr", "x", {**base, "lr": 0.01})
    assert recompute.config_id("bpr", "x", base) != recompute.config_id("bpr", "y", base)


ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ("results/03_main_results/seed_tests_tiktok_recall20.csv",
             "results/02_rewriter_ablations/seed_tests_synthetic_ndcg20.csv")


@pytest.mark.parametrize("table", COMMITTED)
def test_committed_seed_tables_recompute_from_the_committed_archive(table: str) -> None:
    """The converged tables a reader cites (notebook 03's TikTok main comparisons, notebook 02's synthetic
    ablations) are recomputed from `results/evidence/` alone: every p-value and interval to 1e-9."""
    path = ROOT / table
    assert path.is_file(), f"{table} is cited by docs/results.md and must be committed"
    assert recompute.check(path, ROOT / "results" / "evidence") <= 1e-9
