"""Robustness analyses and plan: drops from clean with paired intervals and the 'degrades less' comparison,
the Reviewer's AUC on corrupted items per feature treatment and state, where corrupted items end, an R2MR
run on a corrupted variant read back from the archive, notebook 05's robustness grid, and the tables built
from the notebook's runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from r2mr.cli import archive_commands as archive_cli
from r2mr.cli import plan_commands as plan_cli
from r2mr.data import corrupt, load_dataset
from r2mr.models import MODELS
from r2mr.report import quality as analysis
from r2mr.report import robustness
from r2mr.report.significance import RunSet
from r2mr.runs import archive, experiment, plan, tuning

NONE = pd.Series(dtype=float)


def test_corruption_masks(small_root):
    masks = robustness.corruption_masks("small~image-swap40", 150)
    assert list(masks) == ["image"] and masks["image"].sum() == 60
    planted = robustness.corruption_masks("small", 150, small_root / "small")
    assert set(planted) == {"text", "image"} and 0 < planted["text"].sum() < 150
    assert robustness.corruption_masks("small", 150) == {}


def test_drop_table_pairs_by_seed_and_compares_relative_drops():
    seeds = (1, 2, 3)
    clean = {"R2MR": RunSet({1: 0.20, 2: 0.22, 3: 0.21, 4: 0.5}, NONE, "r2mr"),  # seed 4 not on corrupted
             "MGCN": RunSet({1: 0.20, 2: 0.21, 3: 0.22}, NONE, "mgcn"),
             "VBPR": RunSet({1: 0.10, 2: 0.11, 3: 0.12}, NONE, "vbpr")}
    bad = {"R2MR": RunSet({s: clean["R2MR"].seeds[s] * f for s, f in zip(seeds, (0.97, 0.96, 0.98))}, NONE, "r2mr"),
           "MGCN": RunSet({s: clean["MGCN"].seeds[s] * f for s, f in zip(seeds, (0.80, 0.82, 0.78))}, NONE, "mgcn"),
           "VBPR": RunSet({s: clean["VBPR"].seeds[s] * f for s, f in zip(seeds, (0.97, 0.98, 0.96))}, NONE, "vbpr")}
    t = robustness.drop_table(clean, bad)
    r2 = t.loc["R2MR"]
    assert r2["seeds paired"] == 3 and r2["mean clean"] == pytest.approx(0.21)
    drops = [0.20 * -0.03, 0.22 * -0.04, 0.21 * -0.02]
    assert r2["drop"] == pytest.approx(np.mean(drops)) and r2["drop lo"] < r2["drop"] < r2["drop hi"] < 0
    assert r2["rel drop"] == pytest.approx(np.sum([0.2 * 0.97, 0.22 * 0.96, 0.21 * 0.98]) / 0.63 - 1)
    assert t.loc["MGCN", "rel drop − ref"] == pytest.approx(-0.20 - (-0.03))  # MGCN loses 17 points more
    assert t.loc["MGCN", "rel drop − ref hi"] < 0 and t.loc["MGCN", "sig vs ref"] in ("*", "**")
    assert t.loc["VBPR", "rel drop − ref"] == pytest.approx(0.0, abs=1e-12) and t.loc["VBPR", "sig vs ref"] == "n.s."
    p, adj = (t.loc[["MGCN", "VBPR"], c].to_numpy(float) for c in ("p vs ref", "p vs ref (Holm)"))
    assert adj.min() == pytest.approx(2 * p.min()) and np.all(adj >= p)
    assert np.isnan(t.loc["R2MR", "p vs ref"]) and t.loc["VBPR", "MDE vs ref"] > 0


def _view(scores: np.ndarray, rewritten: dict | None = None) -> dict:
    return {"modalities": ["text", "image"], "eta": 0.5, "scores": scores, "rewritten": rewritten or {}}


def test_auc_table_and_area_counts():
    mask = np.array([True, True, False, False, False, False])
    good = np.column_stack([np.full(6, 0.9), [0.1, 0.2, 0.6, 0.7, 0.8, 0.9]])  # image: corrupted score lowest
    # AUC by hand: corrupted 0.75 is below one clean score (0.8), 0.2 below three: 4 of 8 pairs
    bad = np.column_stack([np.full(6, 0.9), [0.75, 0.2, 0.6, 0.7, 0.8, 0.1]])
    by = {"trained": {1: {"best valid": _view(good)}, 2: {"best valid": _view(bad)}},
          "frozen": {1: {"best valid": _view(bad)}}}
    t = robustness.auc_table(by, {"image": mask, "text": np.zeros(6, bool)})
    assert t.loc[("trained", "best valid", "image"), "AUC"] == pytest.approx((1.0 + 0.5) / 2)
    assert t.loc[("trained", "best valid", "image"), "n seeds"] == 2
    assert t.loc[("frozen", "best valid", "image"), "AUC"] == pytest.approx(0.5)
    assert "text" not in t.index.get_level_values("modality")  # no corrupted text items: skipped
    rewritten = {"image": np.array([True, False, False, False, False, True]), "text": np.zeros(6, bool)}
    counts = robustness.area_counts(_view(good, rewritten), {"image": mask})
    assert counts.loc[("image", "corrupted")].to_dict() == {"items": 2, "high-quality": 0, "disparity": 2,
                                                            "low-quality": 0, "rewritten": 1}
    assert counts.loc[("image", "clean"), "high-quality"] == 4 and counts.loc[("image", "clean"), "rewritten"] == 1
    mean = robustness.area_counts_over_seeds({1: _view(good, rewritten), 2: _view(bad)}, {"image": mask})
    assert mean.loc[("image", "corrupted"), "disparity"] == pytest.approx(1.5) and mean["n seeds"].eq(2).all()


def test_r2mr_on_a_corrupted_variant_through_the_archive(small_root, tmp_path, monkeypatch):
    runs, root = tmp_path / "runs", tmp_path / "evidence"
    monkeypatch.setenv("R2MR_RUNS_DIR", str(runs))
    tiny = dict(dim=16, rw_hidden=(8,), rw_latent=8, rw_codebook=8, rw_code_dim=4, rw_prompt_dim=8,
                rw_disc_hidden=(8,), rw_first_epochs=1, rw_epochs=1, rewrite_every=1, max_rounds=1)
    name = "small~image-swap40"
    for content in ("trained", "frozen"):
        experiment.train("r2mr", name, data_dir=small_root, max_epochs=3, progress=False, seed=5,
                         overrides={**tiny, **({"content": "frozen"} if content == "frozen" else {})})
    assert archive_cli.add_from_store(runs, root) == (2, 0)
    assert all(p.parent.name == name for p in archive.entries(root))
    by: dict = {}
    for path in archive.entries(root):
        entry = archive.read(path, root)
        kind = entry.doc["record"]["config"].get("content", "trained")
        by.setdefault("frozen" if kind == "frozen" else "trained", {})[5] = robustness.archived_states(entry)
    n_items = load_dataset("small", small_root, features=False).n_items
    masks = robustness.corruption_masks(name, n_items)
    t = robustness.auc_table(by, masks)
    assert set(t.index.get_level_values("feature tables")) == {"trained", "frozen"}
    assert "best valid" in set(t.index.get_level_values("model state"))
    assert t["AUC"].between(0, 1).all() and t["n seeds"].eq(1).all()
    best = by["trained"][5]["best valid"]
    counts = robustness.area_counts(best, masks)
    k = round(0.4 * n_items)
    assert counts.loc[("image", "corrupted"), "items"] == k
    assert counts.loc[("image", "corrupted"), list(analysis.STATES)].sum() == k
    with pytest.raises(ValueError, match="masks have 150 items"):
        robustness.auc_table(by, robustness.corruption_masks(name, 150))


def test_robustness_grid_is_notebook_05_and_uses_the_clean_selection():
    tune, reg = tuning.load(), list(MODELS)
    default = plan.build_plan(["synthetic", "tiktok"], None, "converged", tune=tune, registered=reg)
    main = plan.build_plan(["synthetic", "tiktok"], None, "converged", tune=tune, registered=reg,
                           notebooks=[n for n in plan.NOTEBOOKS if n != plan.ROBUSTNESS])
    only = plan.build_plan(["synthetic", "tiktok"], None, "converged", notebooks=[plan.ROBUSTNESS], tune=tune,
                           registered=reg)
    variants = [r for r in only if corrupt.SEP in r.dataset]
    assert [r for r in default if corrupt.SEP in r.dataset] == variants and not any(
        corrupt.SEP in r.dataset for r in main)  # the default plan holds notebook 05's runs, and only it
    per_variant = len(plan.ROBUST_MODELS) + 1  # the models and R2MR's frozen control
    declared = {f"{d}~{v}" for d, vs in plan.ROBUSTNESS_VARIANTS.items() for v in vs}
    assert len(variants) == len(declared) * per_variant * plan.ROBUSTNESS_SEEDS
    assert {r.dataset for r in variants} == declared and "synthetic~image-swap40" in declared
    assert {r.spec.tuning for r in variants if r.spec.role == "model"} == {"pending"}  # until the grids are stored
    assert {r.model for r in only if r.dataset == "synthetic"} <= set(plan.ROBUST_MODELS)
    selected = {("tiktok", m): {"lr": 0.01} for m in plan.ROBUST_MODELS}
    tuned = plan.build_plan(["tiktok"], None, "converged", notebooks=[plan.ROBUSTNESS], tune=tune, registered=reg,
                            selected=selected)
    clean = {(r.model, r.spec.overrides) for r in tuned if r.dataset == "tiktok" and r.spec.tuning == "tuned"
             and r.spec.role == "model"}
    swapped = {(r.model, r.spec.overrides) for r in tuned if r.dataset == "tiktok~audio-swap40"
               and r.spec.role == "model"}
    assert swapped == clean and all(dict(o)["lr"] == 0.01 for _, o in swapped)
    frozen = {r.spec.overrides for r in tuned if r.dataset == "tiktok~audio-swap40" and r.spec.role == "control"}
    assert len(frozen) == 1 and dict(next(iter(frozen)))["lr"] == 0.01  # R2MR's control at R2MR's clean point
    both = plan.build_plan(["tiktok"], None, "converged", notebooks=["03_main_results", plan.ROBUSTNESS], tune=tune,
                           registered=reg)
    main = plan.build_plan(["tiktok"], None, "converged", notebooks=["03_main_results"], tune=tune, registered=reg)
    n_tiktok = len([r for r in variants if r.dataset.startswith("tiktok~")])
    assert len(both) == len(main) + n_tiktok  # the clean rows merge with 03's


def test_notebook_selection_finds_notebook_05():
    assert [p.name for p in plan_cli.notebook_selection("05")] == [f"{plan.ROBUSTNESS}.ipynb"]
    assert [p.name for p in plan_cli.notebook_selection("03,05")] == ["03_main_results.ipynb",
                                                                       f"{plan.ROBUSTNESS}.ipynb"]


def test_drop_tables_from_the_archive_match_clean_and_corrupted_runs(small_root, tmp_path, monkeypatch):
    runs, root = tmp_path / "runs", tmp_path / "evidence"
    monkeypatch.setenv("R2MR_RUNS_DIR", str(runs))
    tiny = dict(dim=16, rw_hidden=(8,), rw_latent=8, rw_codebook=8, rw_code_dim=4, rw_prompt_dim=8,
                rw_disc_hidden=(8,), rw_first_epochs=1, rw_epochs=1, rewrite_every=1, max_rounds=1)
    results = {}
    for data in ("small", "small~image-swap40"):
        for model, over in (("vbpr", {"embedding_size": 16}), ("r2mr", tiny)):
            for seed in (1, 2) + ((101,) if data == "small" and model == "vbpr" else ()):
                results[(data, model, seed)] = experiment.train(model, data, data_dir=small_root, max_epochs=2,
                                                                progress=False, seed=seed, overrides=over)
    archive_cli.add_from_store(runs, root)
    tables = robustness.drop_tables_from_archive(root)
    (name, t), = tables.items()
    assert name == "small~image-swap40" and set(t.index) == {"VBPR", "R2MR"}
    assert t["seeds paired"].eq(2).all()  # the tuning seed 101 never enters
    clean = np.mean([results[("small", "vbpr", s)]["test"]["recall@20"] for s in (1, 2)])
    assert t.loc["VBPR", "mean clean"] == pytest.approx(clean)
    assert np.isfinite(t.loc["VBPR", "rel drop − ref"])


def _run(model: str, dataset: str, seed: int, value: float, content: str = "real"):
    from r2mr.runs.notebook_runs import Run
    from r2mr.runs.plan_specs import Spec

    spec = Spec(plan.label(model), model)
    return Run(spec, dataset, seed, "cached", {"model": model, "config": {"content": content},
                                               "test": {"recall@20": value}})


def test_drop_tables_from_notebook_runs_pair_each_variant_with_its_clean_set():
    from r2mr.report import robustness_runs

    runs = [_run("vbpr", "tiktok", s, 0.10 + s / 100) for s in (1, 2, 3)]
    runs += [_run("vbpr", "tiktok~image-swap20", s, (0.10 + s / 100) * 0.9) for s in (1, 2)]
    runs += [_run("r2mr", d, s, v, c) for d, v in (("tiktok", 0.2), ("tiktok~image-swap20", 0.19))
             for s in (1, 2) for c in ("real", "frozen")]
    runs += [_run("vbpr", "tiktok~audio-swap20", 1, 0.05)]  # no clean R2MR: still a table, without the reference
    sets = robustness_runs.run_sets(runs)
    assert set(sets["tiktok"]) == {"VBPR", "R2MR", "R2MR (frozen features)"} and sets["tiktok"]["VBPR"].seeds[3] == 0.13
    tables = robustness_runs.drop_tables(runs, provenance=False)
    assert list(tables) == ["tiktok~audio-swap20", "tiktok~image-swap20"]
    t = tables["tiktok~image-swap20"]
    assert t.loc["VBPR", "seeds paired"] == 2 and t.loc["VBPR", "rel drop"] == pytest.approx(-0.1)
    assert t.loc["R2MR", "rel drop"] == pytest.approx(-0.05)
    assert t.loc["VBPR", "rel drop − ref"] == pytest.approx(-0.05)  # VBPR loses 5 points more than R2MR
    assert "rel drop − ref" not in tables["tiktok~audio-swap20"]
    alone = robustness_runs.drop_tables([r for r in runs if r.spec.model == "r2mr" and r.result["config"]["content"]
                                         == "real"], provenance=False)["tiktok~image-swap20"]
    assert list(alone.index) == ["R2MR"] and "p vs ref" not in alone  # the reference alone: its drop, no comparison
    fig = robustness_runs.drop_figure(tables)
    assert len(fig.axes) == 2


def test_ground_truth_of_a_variant_and_of_the_planted_set(small_root):
    from r2mr.report import robustness_runs

    n_items = load_dataset("small", small_root, features=False).n_items
    swapped = robustness_runs.ground_truth("small~image-swap40", small_root)
    assert list(swapped) == ["image"] and swapped["image"].sum() == round(0.4 * n_items)
    assert set(robustness_runs.ground_truth("small", small_root)) == {"text", "image"}  # its quality.csv


def test_area_and_rewrite_tables_read_the_trained_runs_at_their_states():
    from r2mr.report import robustness_runs

    mask = {"image": np.array([True, True, False, False, False, False])}
    rounds = [{"directions": {"image": {"candidates": 4, "accepted": 1}, "text": {"candidates": 2, "accepted": 2}}}]
    best = _view(np.column_stack([np.full(6, 0.9), [0.1, 0.2, 0.6, 0.7, 0.8, 0.9]]),
                 {"image": np.array([True, False, False, False, False, False])})
    final = {**best, "rewrite_rounds": rounds * 2}
    states = {"x~image-swap40": ({"trained": {1: {"best valid": best, "after training": final}},
                                  "frozen": {1: {"best valid": final, "after training": final}}}, mask)}
    areas = robustness_runs.area_tables(states)["x~image-swap40"]
    assert areas.loc[("image", "corrupted"), "disparity"] == 2 and areas.loc[("image", "corrupted"), "rewritten"] == 1
    rewrites = robustness_runs.rewrite_tables(states)["x~image-swap40"]
    assert rewrites.loc[1].to_dict() == {"rounds": 2, "candidates": 12, "accepted": 6, "rows rewritten": 1}
