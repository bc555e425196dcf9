"""The two plan stages (tuning grid, then the selected configuration) and notebook 03's table builders,
on a small synthetic set with 1-epoch runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from r2mr.report import main_table
from r2mr.runs import plan
from r2mr.runs.tuning import Grid, TuningPlan

TP = TuningPlan(points=2, seeds=2, metric="recall@20",
                models={"bpr": Grid({"reg_weight": [0.1, 1.0e-4]}), "lightgcn": Grid({"n_layers": [1, 2]}),
                        "r2mr": Grid({"lr": [1.0e-3, 5.0e-4]})})
TWO = dict(notebooks=["03_main_results"], models="bpr,lightgcn", registered=["bpr", "lightgcn"])


def test_stage_one_expands_every_grid_point_with_its_seeds_and_cap_first() -> None:
    runs = plan.build_plan(["synthetic", "baby"], None, "quick", None, tune=TP, **TWO)
    tune = [r for r in runs if r.stage == 1]
    assert runs[:len(tune)] == tune  # stage 1 first
    assert len(tune) == 2 * 2 * 2 * 2  # data sets x models x points x seeds
    assert {r.purposes for r in tune} == {("tune",)} and {r.seed for r in tune} == {999, 1}
    assert {r.epochs for r in tune} == {plan.EPOCH_CAPS["quick"]["tune"]}
    assert {dict(r.spec.point)["reg_weight"] for r in tune if r.model == "bpr"} == {0.1, 1.0e-4}
    assert all(r.overrides == dict(r.spec.point) for r in tune)  # baselines have no quick preset


def test_stage_two_is_pending_until_selected_then_uses_the_selection() -> None:
    runs = plan.build_plan(["synthetic", "baby"], None, "quick", None, tune=TP, **TWO)
    main = [r for r in runs if r.stage == 2]
    assert {r.spec.tuning for r in main} == {"pending"}
    assert len([r for r in main if r.dataset == "synthetic" and r.model == "bpr"]) == plan.MAIN_SEEDS["synthetic"]
    assert len([r for r in main if r.dataset == "baby" and r.model == "bpr"]) == plan.MAIN_SEEDS_OTHER
    picked = {("synthetic", "bpr"): {"reg_weight": 1.0e-4}}
    again = plan.build_plan(["synthetic", "baby"], None, "quick", None, tune=TP, selected=picked, **TWO)
    tuned = [r for r in again if r.spec.tuning == "tuned"]
    assert {(r.dataset, r.model) for r in tuned} == {("synthetic", "bpr")} and len(tuned) == 5
    assert all(r.overrides == {"reg_weight": 1.0e-4} and r.epochs == plan.EPOCH_CAPS["quick"]["train"] for r in tuned)
    assert [r for r in again if r.spec.tuning == "pending" and r.model == "bpr" and r.dataset == "synthetic"] == []


def test_seeds_override_untuned_labels_and_epochs() -> None:
    runs = plan.build_plan(["synthetic"], [7, 8, 9], "full", 3, tune=TP, **TWO)
    assert {r.seed for r in runs if r.stage == 1} == {7, 8} and {r.seed for r in runs if r.stage == 2} == {7, 8, 9}
    assert {r.epochs for r in runs} == {3}
    untuned = plan.build_plan(["synthetic"], [7], "quick", None, **TWO)
    assert all(r.spec.label.endswith(plan.UNTUNED) and r.spec.tuning == "untuned" for r in untuned)
    assert plan.parse_seed_spec("auto") is None and plan.parse_seed_spec("1,2") == [1, 2]
    assert plan.seeds_for(None, "tiktok", "main") == list(plan.DEFAULT_SEEDS[:5])
    assert plan.seeds_for(None, "sports", "ablation") == list(plan.DEFAULT_SEEDS[:3])


def test_select_points_by_mean_valid_and_skips_incomplete_grids() -> None:
    specs = plan.grid_specs("bpr", "quick", None, TP)
    res = lambda v, t: {"model": "bpr", "dataset": "d", "valid": {"recall@20": v}, "test": {"recall@20": t}}  # noqa: E731
    items = [("d", specs[0], res(0.10, 0.5)), ("d", specs[0], res(0.10, 0.5)),
             ("d", specs[1], res(0.12, 0.1)), ("d", specs[1], res(0.09, 0.1)),
             ("e", specs[0], res(0.2, 0.2)), ("e", specs[1], None)]
    assert plan.select_points(items) == {("d", "bpr"): {"reg_weight": 1.0e-4}}  # mean 0.105 > 0.10


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with a small synthetic set whose features are 64 wide (the quick R2MR's d)."""
    from r2mr.data.synth import SynthConfig, write

    root = tmp_path_factory.mktemp("data")
    write(root / "small", SynthConfig(n_users=200, n_items=100, text_dim=64, image_dim=64, mean_interactions=8.0))
    return root


def _both_stages(root: Path) -> tuple[list, list]:
    return main_table.run_main(["small", "baby"], [1, 2], "quick", 1, models="bpr,r2mr", tune=TP, data_dir=root,
                               device="cpu")


@pytest.fixture(scope="module")
def stages(small_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list, list]:
    """Both stages of BPR and R2MR (1 epoch, seeds 1 and 2) on the small set, and on the absent Baby."""
    root = small_data
    mp = pytest.MonkeyPatch()
    mp.setenv("R2MR_RUNS_DIR", str(tmp_path_factory.mktemp("runs")))
    try:
        yield _both_stages(root)
    finally:
        mp.undo()


def test_run_main_feeds_the_selected_point_into_the_main_rows(stages: tuple[list, list]) -> None:
    grid, main = stages
    small = [r for r in grid if r.dataset == "small"]
    assert len(small) == 2 * 2 * 2 and all(r.ok for r in small)
    assert not any(r.ok for r in grid if r.dataset == "baby")
    full = main_table.grid_table(grid)
    assert full[full["data set"] == "baby"].status.str.startswith("not run").all()
    table = main_table.grid_table(small)
    assert len(table) == 4 and table.groupby("model")["selected"].sum().tolist() == [1, 1]
    for model, g in table.groupby("model"):
        chosen = g[g.selected].iloc[0]
        assert chosen["valid recall@20"] == g["valid recall@20"].max()
        row = next(r for r in main if r.ok and plan.label(r.spec.model) == model and r.spec.role == "model")
        assert plan.describe_point(row.spec.point) == chosen.configuration
    baby = [r for r in main if r.dataset == "baby" and r.spec.role == "model"]
    assert baby and all(r.status.startswith("not run: data set missing") for r in baby)


def test_grid_marks_the_default_point_and_tuning_gain_compares_it_with_the_selected(stages: tuple[list, list]
                                                                                       ) -> None:
    grid, _ = stages
    table = main_table.grid_table([r for r in grid if r.dataset == "small"])
    assert table.groupby("model")["default"].sum().tolist() == [1, 1]  # exactly one default point per grid
    assert set(table[table.default].configuration) == {"reg_weight=0.1", "lr=0.001"}  # BPR's and R2MR's defaults
    gain = main_table.tuning_gain(table)
    assert list(gain.model) == ["BPR", "R2MR"] and set(gain["n seeds"]) == {2}
    for _, row in gain.iterrows():
        g = table[table.model == row.model]
        assert row["default"] == g[g.default].configuration.iloc[0]
        assert row["selected"] == g[g.selected].configuration.iloc[0]
        assert row["valid recall@20 selected"] >= row["valid recall@20 default"]  # selection is on valid
        expected = 100 * (row["test recall@20 selected"] / row["test recall@20 default"] - 1)
        assert row["test recall@20 gain %"] == pytest.approx(expected)


def test_main_table_cells_published_rows_and_improvement(stages: tuple[list, list]) -> None:
    grid, main = stages
    table = main_table.main_table(main)
    ours = table[(table["data set"] == "small") & (table.row == "ours, best-valid epoch")]
    assert ours["recall@20"].str.contains(r"± .* \(n=2\)").all() and set(ours.n) == {2}
    r2 = ours[ours.model == "R2MR (quick size)"]
    assert set(r2["size"]) == {"quick"} and set(ours[ours.model == "BPR"]["size"]) == {"own"}
    assert set(ours.variant) >= {"official", "–"}
    assert set(ours["stop rule"]) == {"capped at 1 epochs (a tutorial, not evidence): the cap ended 2 of 2 runs"}
    assert set(ours["selected epoch"]) == {"0.0 (0)"}  # one epoch run: epoch 0 selected in both seeds
    assert set(r2["rewrite rounds before it"]) == {"Rewriter inactive"}  # no round within one epoch
    assert set(ours[ours.model == "BPR"]["rewrite rounds before it"]) == {""}
    baby_bpr = table[(table["data set"] == "baby") & (table.model == "BPR")]
    assert baby_bpr.row.iloc[0].startswith("not run") and baby_bpr.row.str.startswith("published: MMRec").any()
    assert set(baby_bpr.configuration) == {"–"}  # no grid ran there: no "after tuning" promise
    assert set(baby_bpr[baby_bpr.row.str.startswith("published")][main_table.GAP_COLUMN]) == {"–"}  # nothing ran
    sig = main_table.significance(main)
    assert set(sig.index.get_level_values("metric")) == {"recall@20", "ndcg@20"}
    assert ((sig["p wilcoxon (Holm)"] >= sig["p wilcoxon"]) & (sig["p wilcoxon (Holm)"] <= 1)).all()
    imp = main_table.improvement_table(main, sig)
    r20 = imp[(imp["data set"] == "small") & (imp.metric == "recall@20")].iloc[0]
    assert np.isclose(r20["rel improvement"], (r20["R2MR"] - r20["baseline"]) / r20["baseline"])
    assert np.isfinite(r20["p wilcoxon (Holm)"])
    avg = imp[imp["data set"] == "average over data sets and metrics"]["rel improvement"].iloc[0]
    assert np.isclose(avg, imp[imp["data set"] == "small"]["rel improvement"].mean())


def test_selection_bias_is_never_negative_for_a_test_picked_grid_point(stages: tuple[list, list]) -> None:
    grid, main = stages
    bias = main_table.bias_table(main, grid)
    point = bias.xs("best test grid point", level="selection")
    assert len(point) == 2 and (point["abs diff"] >= 0).all()
    assert {"best test epoch", "both"} <= set(bias.index.get_level_values("selection"))


def test_plan_prints_stage_two_as_after_tuning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import io

    from r2mr.cli import plan_commands as plan_cli
    from r2mr.data.synth import SynthConfig, write

    write(tmp_path / "tiny", SynthConfig(n_users=120, n_items=60, text_dim=8, image_dim=8, mean_interactions=8.0))
    monkeypatch.setenv("R2MR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(plan_cli, "tuning_plan", lambda inv: TP)
    monkeypatch.setattr(plan_cli, "table_datasets", lambda names, data_dir: list(names))
    # --scale quick: the default (converged) tunes only the TUNED_DATASETS, not this tiny set
    args = argparse.Namespace(datasets="tiny", data_dir=str(tmp_path), device="cpu", seeds="1,2", epochs=1,
                              scale="quick", notebooks="03")
    monkeypatch.setattr(plan_cli, "run_plan", lambda inv, selected=None: plan.build_plan(
        inv.datasets, inv.seeds, inv.scale, inv.epochs, notebooks=["03_main_results"], models="bpr",
        registered=["bpr"], tune=TP, selected=selected))
    out = io.StringIO()
    assert plan_cli.plan_main(args, out) == 0
    text = out.getvalue()
    assert "tune" in text and "BPR grid 1/2: reg_weight=0.1" in text
    assert "BPR  after tuning (seeds 1,2)" in text and "2 after tuning (stage 2" in text


def test_run_all_trains_the_grid_then_the_selected_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import io

    from r2mr.cli import pipeline
    from r2mr.cli import plan_commands as plan_cli
    from r2mr.data.synth import SynthConfig, write
    from r2mr.runs import experiment

    write(tmp_path / "tiny", SynthConfig(n_users=120, n_items=60, text_dim=8, image_dim=8, mean_interactions=8.0))
    monkeypatch.setenv("R2MR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(plan_cli, "tuning_plan", lambda inv: TP)
    monkeypatch.setattr(plan_cli, "run_plan", lambda inv, selected=None: plan.build_plan(
        inv.datasets, inv.seeds, inv.scale, inv.epochs, notebooks=["03_main_results"], models="bpr",
        registered=["bpr"], tune=TP, selected=selected))
    monkeypatch.setattr(pipeline, "run", lambda inv, stream: [])  # the notebooks are not this test's subject
    # --scale quick: the default (converged) tunes only the TUNED_DATASETS, not this tiny set
    args = argparse.Namespace(datasets="tiny", data_dir=str(tmp_path), device="cpu", seeds="1,2,3", epochs=1,
                              scale="quick", notebooks="03", smoke=False, restart=False, jobs=1, ray=None,
                              gpus_per_run=0.0, cpus_per_run=1)
    out = io.StringIO()
    assert plan_cli.run_all_main(args, out) == 0
    text = out.getvalue()
    assert "stage 1: 7 runs: 0 stored, 4 to train, 3 after tuning" in text  # 2 points x 2 seeds; 3 main rows
    # stage 2: seeds 1 and 2 of the selected point are the grid's own runs (same cap here), read from the store
    assert "stage 2: 7 runs: 6 stored, 1 to train" in text and "[1/1] BPR on tiny, seed 3: trained" in text
    inv = plan_cli.invocation(args)
    planned, status = plan_cli.staged_plan(inv)
    assert {st for st, _ in status} == {"stored"}
    main = [r for r in planned if r.stage == 2]
    assert {r.spec.tuning for r in main} == {"tuned"} and len(main) == 3
    grid = [(dict(r.spec.point), experiment.find("bpr", "tiny", data_dir=tmp_path, overrides=r.overrides,
                                                 seed=r.seed, max_epochs=1)) for r in planned if r.stage == 1]
    from r2mr.runs.tuning import select

    assert main[0].overrides == select(grid)[0]  # the rows run at the point chosen on validation


def test_against_reference_pairs_each_row_with_the_reference(stages: tuple[list, list]) -> None:
    _, main = stages
    table = main_table.against_reference([r for r in main if r.spec.role == "model"], "BPR")
    rows = table.loc["recall@20"].index.tolist()
    assert rows == [("small: R2MR (quick size)", "small: BPR")]  # baby has no finished runs: no pair
    assert table["n seeds"].eq(2).all() and table["n users"].gt(0).all()


def test_reviewer_tables_label_every_state() -> None:
    from r2mr.report import reviewer_tables

    rng = np.random.default_rng(0)
    s = rng.random((50, 2))
    s[:10, 0] = 0.5  # ties at η: counted good by s ≥ η, poor by s > η
    view = {"scores": s, "modalities": ["text", "image"], "eta": 0.5}
    final = {**view, "before_rewrite": {"scores": 1 - s}}
    states = {"syn": reviewer_tables.analysis.model_states(final, {**view, "scores": s * 0 + 1.0})}
    shares = reviewer_tables.shares_by_state(states)
    assert set(shares.index.get_level_values("model state")) == {"before first rewrite", "best valid",
                                                                  "after training"}
    after = shares.xs(("syn", "after training"), level=["data set", "model state"])
    assert after.loc["s ≥ η (code)", "high-quality"] > after.loc["s > η (paper)", "high-quality"]
    assert np.allclose(shares.sum(axis=1), 1.0)
    sat = reviewer_tables.saturation_by_state(states)
    assert sat.loc[("syn", "best valid", "text"), "share at 1"] == 1.0
    assert sat.loc[("syn", "after training", "text"), "share at 0.5"] == pytest.approx(0.2)
    truth = {"text": np.arange(50) < 25, "image": np.arange(50) % 2 == 0}
    det = reviewer_tables.detection_by_features({"trained": states["syn"], "frozen": {}}, truth)
    assert set(det.index.get_level_values("feature tables")) == {"trained"}  # no frozen run: no rows
    assert det.loc[("trained", "before first rewrite"), "text"] == pytest.approx(
        1 - det.loc[("trained", "after training"), "text"])  # reversed scores reverse the ranking


def test_tuning_gain_says_when_the_default_is_not_a_grid_point() -> None:
    grid = pd.DataFrame({"data set": ["t", "t"], "model": ["BM3", "BM3"], "configuration": ["a=1", "a=2"],
                         "default": [False, False], "n seeds": [2, 2], "valid recall@20": [0.1, 0.2],
                         "test recall@20": [0.1, 0.3], "selected": [False, True], "status": ["ok", "ok"]})
    row = main_table.tuning_gain(grid).iloc[0]
    assert row["default"] == "not a grid point" and row["selected"] == "a=2"
    assert np.isnan(row["valid recall@20 default"]) and np.isnan(row["test recall@20 gain %"])
    assert row["test recall@20 selected"] == 0.3


def test_seed_tests_of_the_main_rows_recompute_from_the_archive(stages: tuple[list, list], small_data: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from r2mr.cli import archive_commands as archive_cli
    from r2mr.core.paths import runs_root
    from r2mr.report import recompute, seed_tests
    from r2mr.runs import archive

    _, main = stages
    tables = seed_tests.seed_tests(main)
    assert set(tables) == {("small", "recall@20"), ("small", "ndcg@20")}  # Baby: not run, no test
    t = tables[("small", "recall@20")]
    controls = [(f"R2MR content control: {c} features (quick size)", "R2MR (quick size)") for c in ("random", "frozen")]
    assert list(t.index) == [("R2MR (quick size)", "BPR"), *controls]
    assert list(t["design"]) == ["Welch", "paired by seed", "paired by seed"]  # controls: R2MR with one switch
    r2 = [r.result["test"]["recall@20"] for r in main if r.ok and r.spec.model == "r2mr" and r.spec.role == "model"]
    bpr = [r.result["test"]["recall@20"] for r in main if r.ok and r.spec.model == "bpr"]
    assert t["diff"].iloc[0] == pytest.approx(np.mean(r2) - np.mean(bpr))
    first = seed_tests.seed_tests(main, ["recall@20"], pair_rule=seed_tests.against_first)[("small", "recall@20")]
    assert [b for _, b in first.index] == ["BPR"] * 3 and len(set(a for a, _ in first.index)) == 3  # all vs row 1
    recs = seed_tests.records_by_dataset(main)
    assert set(recs) == {"small"} and {len(v) for v in recs["small"].values()} == {2}
    # a fresh clone: the runs only in the archive, read back (never retrained), tables written and recomputed
    root = tmp_path / "evidence"
    monkeypatch.setenv(archive.ARCHIVE_ENV, str(root))
    archive_cli.add_from_store(runs_root(), root)
    monkeypatch.setenv("R2MR_RUNS_DIR", str(tmp_path / "fresh-runs"))
    _, again = _both_stages(small_data)
    assert {r.status for r in again if r.ok} == {"cached"} and any(r.result.get("source") == "archive" for r in again)
    paths = seed_tests.write(seed_tests.seed_tests(again), tmp_path / "results")
    assert [p.name for p in paths] == ["seed_tests_small_recall20.csv", "seed_tests_small_ndcg20.csv"]
    assert all(recompute.check(p, root) <= 1e-9 for p in paths)  # anyone with the archive gets the same numbers


def test_seed_test_pairs_without_r2mr_compare_the_controls_with_the_baselines() -> None:
    from r2mr.report import seed_tests
    from r2mr.runs.notebook_runs import Run

    def group(label: str, model: str, role: str) -> list[Run]:
        return [Run(plan.Spec.of(label, model, role=role), "baby", s, "cached", {}) for s in (1, 2)]

    groups = {"BPR": group("BPR", "bpr", "model"), "LightGCN": group("LightGCN", "lightgcn", "model"),
              "random": group("random", "r2mr", "control")}
    assert seed_tests.pairs_of(groups) == [("random", "BPR"), ("random", "LightGCN")]  # Baby: no R2MR row
    groups["R2MR"] = group("R2MR", "r2mr", "model")
    assert seed_tests.pairs_of(groups) == [("R2MR", "BPR"), ("R2MR", "LightGCN"), ("random", "R2MR")]


def test_sensitivity_rows_are_paired_with_their_family_default() -> None:
    from r2mr.report import seed_tests
    from r2mr.runs.notebook_runs import Run

    full = {"lr": 0.00025, "eta": 0.5, "n_perspectives": 1}

    def group(label: str, change: dict) -> list[Run]:  # the explicit K = 1 of its spec resolves to the default
        spec = plan.Spec(label, "r2mr", tuple(sorted(change.items())), "sensitivity")
        return [Run(spec, "tiktok", s, "cached", {"config": {**full, **change, "seed": s}}) for s in (1, 2)]

    groups = {"η = 0.4": group("η = 0.4", {"eta": 0.4}), "K = 1": group("K = 1", {"n_perspectives": 1}),
              "K = 2": group("K = 2", {"n_perspectives": 2})}
    rule = seed_tests.against_config({**full, "seed": 999})
    assert rule(groups) == [("η = 0.4", "K = 1"), ("K = 2", "K = 1")]  # the default need not come first
    assert seed_tests.against_config({**full, "lr": 0.001})(groups) == []  # no row at that configuration


def test_sensitivity_tests_use_each_data_sets_own_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from r2mr.report import seed_tests
    from r2mr.runs.notebook_runs import Run

    def runs_at(dataset: str, label: str, config: dict) -> list[Run]:
        spec = plan.Spec(label, "r2mr", tuple(sorted(config.items())), "sensitivity")
        return [Run(spec, dataset, s, "cached", {"config": {**config, "seed": s}}, folder=Path("x")) for s in (1, 2)]

    full = {"synthetic": {"lr": 0.001, "eta": 0.5}, "tiktok": {"lr": 0.00025, "eta": 0.5}}
    reference = [r for ds, c in full.items() for r in runs_at(ds, "full", c)]
    eta = [r for ds, c in full.items() for e in (0.4, 0.5) for r in runs_at(ds, f"η = {e}", {**c, "eta": e})]
    configs = seed_tests.reference_configs(reference, "full")
    assert {ds: {k: v for k, v in c.items() if k != "seed"} for ds, c in configs.items()} == full
    called = []
    monkeypatch.setattr(seed_tests.recompute, "table_from_runs",
                        lambda arms, pairs, metric: called.append(pairs) or pd.DataFrame())
    tables = seed_tests.family_tests({"eta": eta}, configs, metrics=("recall@20",))
    assert sorted(tables) == [("eta_synthetic", "recall@20"), ("eta_tiktok", "recall@20")]
    assert called == [[("η = 0.4", "η = 0.5")]] * 2  # each data set paired with its own default row


def test_published_rows_carry_our_gap_with_its_interval() -> None:
    from r2mr.report import published as pub
    from r2mr.runs.notebook_runs import Run

    spec = plan.Spec.of("LightGCN", "lightgcn")
    runs = [Run(spec, "baby", s, "cached", {"test": {"recall@20": v}}) for s, v in ((1, 0.078), (2, 0.080), (3, 0.082))]
    ref = pub.Published(pub.Source("MMRec", "a test citation", "valid"), {"recall@20": 0.075})
    cell = main_table._gap_cell(runs, ref, ("valid",))  # mean 0.080, t interval ± 0.0049683 over 3 seeds
    assert cell == "+6.7% [+0.0, +13.3] (ours best-valid epoch, n=3)"
    assert main_table._gap_cell(runs[:1], ref, ("valid",)) == "+4.0% (ours best-valid epoch, n=1)"
