"""The notebooks' helpers (split by job): data-set discovery and "not run" reasons, the plan's grids, the run
grid through the store, summaries over seeds, comparison with published numbers, and the output writers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from r2mr.core import paths
from r2mr.core.errors import ConfigError
from r2mr.data import discovery
from r2mr.models import MODELS
from r2mr.models.bpr import BPR
from r2mr.report import dataset_tables, outputs, tables
from r2mr.runs import notebook_runs as runmod
from r2mr.runs import plan

from .conftest import TOY_ROWS, write_inter


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("R2MR_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


class FeatureBPR(BPR):
    needs_features = True


def test_parse_lists_and_seeds() -> None:
    assert plan.parse_list(" a, b ,,c") == ["a", "b", "c"]
    assert plan.parse_list(None) == [] and plan.parse_list(["x"]) == ["x"]
    assert plan.parse_seeds("999,1, 2") == [999, 1, 2] and plan.parse_seeds(7) == [7]
    for bad in ("abc", "-1", str(2**32), "1.5", ""):
        with pytest.raises(ConfigError, match="--seeds"):
            plan.parse_seeds(bad)


def test_locate_present_and_reasons(tmp_path: Path) -> None:
    write_inter(tmp_path / "baby", TOY_ROWS)
    write_inter(tmp_path / "tiktok", TOY_ROWS)
    np.save(tmp_path / "tiktok" / "image_feat.npy", np.ones((5, 2), np.float32))
    assert discovery.datasets_present(tmp_path) == ["baby", "tiktok"]
    assert discovery.resolve_datasets("auto", tmp_path) == ["baby", "synthetic", "tiktok"]  # + the embedded set
    assert discovery.requested_datasets(None, tmp_path) == ["baby", "synthetic", "tiktok"]
    assert discovery.resolve_datasets("tiktok", tmp_path) == ["tiktok"]  # a named list is taken as it is
    assert discovery.find_dataset_root("baby", tmp_path) == tmp_path
    assert discovery.missing_data_reason("baby", tmp_path) is None
    assert discovery.missing_data_reason("baby", tmp_path, needs_features=True) == (
        "not run: item features missing (run `python -m r2mr data download baby`)")
    assert discovery.missing_data_reason("tiktok", tmp_path, needs_features=True) is None
    assert discovery.missing_data_reason("sports", tmp_path) == (
        "not run: data set missing (run `python -m r2mr data download sports`)")
    fix = f"put lastfm.inter (and any <modality>_feat.npy) in {tmp_path / 'lastfm'}/"
    assert fix in discovery.missing_data_reason("lastfm", tmp_path)
    assert discovery.table_datasets(["baby"], tmp_path) == ["baby", "sports", "clothing"]
    inv = discovery.inventory(["baby", "tiktok", "sports"], tmp_path)
    assert list(inv["found"]) == ["yes", "yes", "no"] and inv.loc["tiktok", "item features"] == "image 2-d"


def test_finding_has_no_side_effects_and_ensure_synthetic_generates_once(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from r2mr.data import synth

    made = []
    monkeypatch.setattr(discovery, "DEFAULT_DATA", tmp_path / "repo" / "data")
    monkeypatch.setattr(synth, "write", lambda out, cfg=None: made.append(out) or write_inter(Path(out), TOY_ROWS))
    empty = tmp_path / "empty"
    assert discovery.find_dataset_root("synthetic", empty) is None
    assert discovery.resolve_datasets("auto", empty) == ["synthetic"] and made == []  # finding writes nothing
    assert discovery.missing_data_reason("synthetic", empty).endswith(
        "(run `python -m r2mr data synth --out data/synthetic`)")
    assert discovery.ensure_synthetic(empty) == tmp_path / "repo" / "data"
    assert discovery.ensure_synthetic(empty) == tmp_path / "repo" / "data"
    assert made == [tmp_path / "repo" / "data" / "synthetic"]  # generated once, into the repository's data/
    assert discovery.find_dataset_root("synthetic", empty) == tmp_path / "repo" / "data"


def test_one_data_root_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("R2MR_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.data_root(None) == paths.REPO_ROOT / "data"  # the default: the repository's data/
    assert paths.data_root("x/y") == tmp_path / "x" / "y"  # relative: from the working directory
    monkeypatch.setenv("R2MR_DATA_DIR", "rel")
    assert paths.data_root(None) == tmp_path / "rel" and paths.data_root_source(None) == "$R2MR_DATA_DIR"
    assert paths.data_root("/abs/d") == Path("/abs/d")
    assert paths.display_path(paths.REPO_ROOT / "a" / "b") == "a/b"
    assert paths.display_path("/elsewhere/x") == "/elsewhere/x"


def test_run_grid_caches_forces_and_reports_missing_data(small_root: Path, runs_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "featbpr", FeatureBPR)
    (small_root / "graphonly").mkdir(exist_ok=True)  # the small graph without its feature files
    (small_root / "graphonly" / "graphonly.inter").write_text((small_root / "small" / "small.inter").read_text())
    specs = [plan.Spec.of("BPR", "bpr", batch_size=512), plan.Spec.of("F", "featbpr", role="control")]
    kw = dict(data_dir=small_root, device="cpu", epochs=2)
    runs = runmod.run_grid(specs, ["small", "graphonly", "absent"], [1, 2], **kw)
    status = {(r.dataset, r.spec.label, r.seed): r.status for r in runs}
    assert status[("small", "BPR", 1)] == "trained" and status[("small", "F", 2)] == "trained"
    assert status[("graphonly", "F", 1)].startswith("not run: item features missing")
    assert status[("graphonly", "BPR", 1)] == "trained"
    assert status[("absent", "BPR", 1)].startswith("not run: data set missing")
    again = runmod.run_one(specs[0], "small", 1, **kw)
    assert again.status == "cached" and again.result["test"] == runs[0].result["test"]
    forced = runmod.run_one(specs[0], "small", 1, force_since=time.time() + 1, **kw)
    assert forced.status == "trained" and forced.result["test"] == runs[0].result["test"]  # deterministic


def _fake_run(spec: plan.Spec, dataset: str, seed: int, r20: float) -> runmod.Run:
    metrics = {"recall@10": r20 / 2, "recall@20": r20, "ndcg@10": r20 / 4, "ndcg@20": r20 / 3}
    res = {"test": metrics, "test_selected_by_test": {k: v + 0.01 for k, v in metrics.items()},
           "best_epoch": 3, "selected_by_test_epoch": 4, "epochs_run": 10, "seconds_per_epoch": 1.0,
           "seconds_per_eval": 0.5, "device": "cpu", "device_name": "cpu (x86_64, 2 threads)",
           "config": {"variant": "official"}}
    return runmod.Run(spec, dataset, seed, "cached", res)


def test_summarise_mean_std_over_seeds_and_not_run_rows() -> None:
    lg = plan.Spec.of("LightGCN", "lightgcn")
    r2 = plan.Spec.of("R2MR", "r2mr", selections=("valid", "test"))
    runs = [_fake_run(lg, "baby", s, v) for s, v in [(1, 0.07), (2, 0.08), (3, 0.09)]]
    runs += [runmod.Run(r2, "baby", 1, "not run: item features missing (x)")]
    runs += [_fake_run(r2, "clothing", 1, 0.10)]
    tidy = runmod.summarise(runs)
    row = tidy[(tidy.label == "LightGCN") & (tidy.metric == "recall@20")].iloc[0]
    assert row["mean"] == pytest.approx(0.08) and row["std"] == pytest.approx(0.01) and row["n_seeds"] == 3
    assert row["seeds"] == "1,2,3" and row["status"] == "ok"
    missing = tidy[(tidy.dataset == "baby") & (tidy.label == "R2MR")]
    assert len(missing) == 8 and missing["mean"].isna().all()
    assert (missing.status == "not run: item features missing (x)").all()
    test_sel = tidy[(tidy.dataset == "clothing") & (tidy.selection == "test") & (tidy.metric == "recall@20")].iloc[0]
    assert test_sel["mean"] == pytest.approx(0.11) and np.isnan(test_sel["std"])


def test_compare_and_wide_table_put_published_numbers_on_the_matching_protocol() -> None:
    lg = plan.Spec.of("LightGCN", "lightgcn")
    r2 = plan.Spec.of("R2MR", "r2mr", selections=("valid", "test"))
    ctl = plan.Spec.of("R2MR control", "r2mr", role="control")
    tidy = tables.compare(runmod.summarise([_fake_run(lg, "baby", 1, 0.0829), _fake_run(r2, "clothing", 1, 0.0937),
                                            _fake_run(ctl, "clothing", 1, 0.05)]))
    lgr = tidy[(tidy.label == "LightGCN") & (tidy.metric == "recall@20")].iloc[0]
    assert lgr["published"] == 0.0754 and lgr["source"] == "MMRec"
    assert lgr["rel_diff"] == pytest.approx((0.0829 - 0.0754) / 0.0754)
    r2r = tidy[(tidy.label == "R2MR") & (tidy.metric == "recall@20")].set_index("selection")
    assert np.isnan(r2r.loc["valid", "published"]) and r2r.loc["test", "published"] == 0.1037  # official: test
    assert tidy[tidy.label == "R2MR control"]["published"].isna().all()  # a control is never compared
    wide = tables.wide_table(tidy)
    rows = wide[wide.model == "R2MR"].row.tolist()
    assert rows == ["ours, best-valid epoch (1 seed)", "ours, test-selected (official rule) (1 seed)",
                    "published: R2MR-log (test-selected (official rule))", "Δ ours (test) vs R2MR-log"]
    delta = wide[(wide.model == "LightGCN") & wide.row.str.startswith("Δ")].iloc[0]
    assert delta["recall@20"] == "+9.9%"
    assert wide[wide.model == "R2MR control"].row.tolist() == ["ours, best-valid epoch (1 seed)"]


def test_formatting() -> None:
    assert tables.fmt_mean_std(0.05123, 0.00071) == "0.0512 ± 0.0007"
    assert tables.fmt_mean_std(0.05, np.nan) == "0.0500" and tables.fmt_mean_std(np.nan, np.nan) == "—"
    assert tables.fmt_pct(0.0512) == "+5.1%" and tables.fmt_pct(np.nan) == "—"
    assert np.isnan(tables.rel_diff(0.1, None)) and np.isnan(tables.rel_diff(0.1, 0.0))


def test_statistics_vs_published(tmp_path: Path) -> None:
    from r2mr.data import load_dataset

    write_inter(tmp_path / "baby", TOY_ROWS)
    table = dataset_tables.statistics_vs_published(load_dataset("baby", tmp_path))
    assert table.loc["users", "ours"] == "3" and table.loc["users", "published"] == "19,445"
    assert table.loc["users", "difference"] == "-19,442"
    write_inter(tmp_path / "mine", TOY_ROWS)
    assert (dataset_tables.statistics_vs_published(load_dataset("mine", tmp_path)).published == "—").all()


def test_outputs_write_tables_figures_and_run_json(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = outputs.Outputs("99_test", tmp_path)
    run = _fake_run(plan.Spec.of("BPR", "bpr"), "baby", 7, 0.05)
    out.table(pd.DataFrame({"a": [1.23456]}), "t", outputs.provenance([run]))
    fig, _ = plt.subplots()
    out.figure(fig, "f")
    listing = out.finish({"seeds": "7"}, [run])
    md = (tmp_path / "results" / "99_test" / "t.md").read_text()
    assert "1.2346" in md and "data sets: baby" in md and "seeds: 7" in md and "commit:" in md
    assert "stop rule: early stopping on valid recall@20 (patience 20), no epoch limit" in md
    assert "variant: official" in md and "device: cpu (x86_64, 2 threads)" in md
    for p in ["results/99_test/t.csv", "figures/99_test_f.png", "figures/99_test_f.pdf"]:
        assert (tmp_path / p).is_file()
    info = json.loads((tmp_path / "results" / "99_test" / "run.json").read_text())
    assert info["parameters"] == {"seeds": "7"} and len(info["files"]) == 4 and "wrote:" in listing


def test_short_paths() -> None:
    assert paths.short_paths("/srv/a/b/data/tiktok/tiktok.inter: dropped") == "…/tiktok/tiktok.inter: dropped"
    assert paths.short_paths(f"{paths.REPO_ROOT}/data/x and ./rel/y") == "data/x and ./rel/y"


def test_main_specs_cover_the_registry() -> None:
    specs = plan.main_specs()
    assert [s.model for s in specs][:2] == ["bpr", "lightgcn"] and {s.model for s in specs} == set(MODELS)
    models = [s for s in specs if s.role == "model"]
    assert all(s.selections == (("valid", "test") if s.model == "r2mr" else ("valid",)) for s in models)
    assert [s.label for s in plan.main_specs("lightgcn")] == ["LightGCN"]


def test_scales_shrink_only_the_models_with_a_quick_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(plan.QUICK, "bpr", {"embedding_size": 16})
    quick, full = plan.model_spec("bpr", "quick"), plan.model_spec("bpr", "full")
    assert quick.label == "BPR (quick size)" and dict(quick.overrides) == {"embedding_size": 16}
    assert full.label == "BPR" and full.overrides == ()
    assert plan.model_spec("lightgcn", "quick").overrides == ()
    assert dict(plan.model_spec("bpr", "quick", embedding_size=8).overrides) == {"embedding_size": 8}
    with pytest.raises(ConfigError, match="--scale 'huge' is not allowed"):
        plan.model_spec("bpr", "huge")


def _fake_r2mr(tmp_path: Path, label: str, seed: int, r20: float, eta: float = 0.5) -> runmod.Run:
    import torch

    direction = {"candidates": 2, "accepted": seed, "mean_score_before": 0.2, "mean_score_generated": 0.6,
                 "mean_score_after": 0.4}
    art = {"modalities": ["text", "image"], "eta": eta,
           "scores": torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.1, 0.3], [0.8, 0.1]]),
           "rewritten": {"text": torch.tensor([False, False, True, False]),
                         "image": torch.tensor([True, False, False, False])},
           "rewrite_rounds": [{"round": 1, "epoch": 6, "n_low": 1, "n_disparity": 2, "n_high": 1,
                               "directions": {"text->image": direction}}]}
    path = tmp_path / f"{label}-{seed}.pt"
    torch.save(art, path)
    run = _fake_run(plan.Spec.of(label, "r2mr", role="ablation"), "synthetic", seed, r20)
    run.result.update(artifacts=str(path), config={"eta": eta, "variant": "official"})
    return run


def test_ablation_and_eta_tables(tmp_path: Path) -> None:
    runs = [_fake_r2mr(tmp_path, "full", s, v) for s, v in [(1, 0.20), (3, 0.22)]]
    runs += [_fake_r2mr(tmp_path, "none", s, v) for s, v in [(1, 0.19), (3, 0.19)]]
    table = tables.ablation_table(runs).set_index("variant")
    assert table.loc["full", "recall@20"] == "0.2100 ± 0.0141" and table.loc["full", "Δ recall@20 vs row 1"] == "+0.0%"
    assert table.loc["none", "Δ recall@20 vs row 1"] == "-9.5%"
    assert table.loc["full", "accepted"] == 2.0 and table.loc["full", "rows rewritten"] == 2.0
    assert table.loc["full", "share disparity"] == 0.5  # (0.9, 0.2) and (0.8, 0.1) at η = 0.5
    eta = tables.eta_table([_fake_r2mr(tmp_path, "a", 1, 0.2, 0.4), _fake_r2mr(tmp_path, "b", 1, 0.3, 0.6)])
    assert list(eta.index) == [("synthetic", 0.4), ("synthetic", 0.6)] and eta["recall@20"].tolist() == [0.2, 0.3]
    assert eta.loc[("synthetic", 0.6), "share disparity"] == 0.5
    ks = [_fake_r2mr(tmp_path, "k", s, v) for s, v in [(1, 0.2), (2, 0.4)]]
    for run, k in zip(ks, (2, 2)):
        run.result["config"]["n_perspectives"] = k
    by_k = tables.sensitivity_table(ks, "n_perspectives")
    assert list(by_k.index) == [("synthetic", 2)] and by_k["recall@20"].iloc[0] == pytest.approx(0.3)
    assert by_k["seeds"].iloc[0] == 2 and by_k["recall@20 std"].iloc[0] == pytest.approx(0.1414, abs=1e-4)
    plain = tables.ablation_table([_fake_run(plan.Spec.of("BPR", "bpr"), "baby", 1, 0.1)])
    assert np.isnan(plain.loc[0, "accepted"])  # no artifacts: no rewrite columns


def test_ablation_and_eta_specs() -> None:
    specs = plan.ablation_specs("full")
    labels = [s.label for s in specs]
    assert labels[0].startswith("full rewriter") and len(specs) == len(plan.ABLATIONS) + 2
    assert dict(specs[1].overrides) == {"use_reviewer": False}  # no Reviewer
    assert dict(specs[2].overrides) == {"max_rounds": 0}  # no Rewriter
    assert dict(plan.ablation_specs("full", "paper")[2].overrides) == {"max_rounds": 0, "variant": "paper"}
    assert any(lab.startswith("seed-noise replicate") for lab in labels)  # labelled, not read as an effect
    assert [s.role for s in specs[-2:]] == ["control", "control"]
    assert dict(specs[-2].overrides)["content"] == "random"
    sens = {s.label: dict(s.overrides) for s in plan.sensitivity_specs("quick")}
    assert [sens[f"K = {k} (quick size)"]["n_perspectives"] for k in (1, 2, 4)] == [1, 2, 4]  # 3 does not divide 64
    assert "K = 3 (quick size)" not in sens and {"K = 3"} <= {s.label for s in plan.sensitivity_specs("full")}
    assert sens["codebook 32 (quick size)"]["rw_codebook"] == 32
    assert sens["codebook 256 (quick size)"]["rw_codebook"] == 256
    full = {s.label: dict(s.overrides) for s in plan.sensitivity_specs("full")}
    assert full["codebook 512"]["rw_codebook"] == 512 and "rw_codebook" not in full["codebook 4096"]  # the default
    etas = plan.eta_specs([0.4, 0.5], "quick")
    assert dict(etas[0].overrides)["eta"] == 0.4 and "eta" not in dict(etas[1].overrides)
    assert etas[0].label == "η = 0.4 (quick size)" and dict(etas[1].overrides)["dim"] == 64


def test_planted_corruption(small_root: Path, tmp_path: Path) -> None:
    masks = dataset_tables.planted_corruption("small", small_root)
    assert set(masks) == {"text", "image"} and masks["text"].dtype == bool and masks["text"].any()
    write_inter(tmp_path / "baby", TOY_ROWS)
    assert dataset_tables.planted_corruption("baby", tmp_path) is None


def test_timing_table(small_root: Path) -> None:
    runs = [_fake_run(plan.Spec.of("BPR", "bpr"), "small", s, 0.1) for s in (1, 2)]
    runs[1].result["seconds_per_epoch"] = 3.0
    runs.append(runmod.Run(plan.Spec.of("X", "bpr"), "small", 1, "not run: x"))
    table = tables.timing_table(runs, small_root)
    assert len(table) == 1 and table.loc[0, "s/epoch"] == 2.0 and table.loc[0, "train interactions"] > 0
    assert tables.timing_table([], small_root).empty


def test_markdown_tables_print_counts_booleans_missing_values_and_index_levels_plainly(tmp_path: Path) -> None:
    from r2mr.core.atomic_io import write_table

    df = pd.DataFrame({"data set": ["a", "a", "b"], "model": ["x", "y", "x"], "n seeds": [2.0, 3.0, np.nan],
                       "recall@20": [0.12345, np.nan, 0.5], "selected": [True, False, None], "note": ["ok", None, "—"]})
    write_table(df.set_index(["data set", "model"]), tmp_path / "t")
    md = (tmp_path / "t.md").read_text().splitlines()
    assert md[0].split("|")[1].strip() == "data set" and "('a'" not in "".join(md)  # levels as columns
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md[2:5]]
    assert rows[0] == ["a", "x", "2", "0.1235", "yes", "ok"]
    assert rows[1] == ["a", "y", "3", "", "no", ""]
    assert rows[2] == ["b", "x", "", "0.5000", "", "—"]
    assert pd.read_csv(tmp_path / "t.csv")["n seeds"].tolist()[:2] == [2.0, 3.0]  # the CSV keeps full values


def test_outputs_keep_only_the_last_runs_files_and_record_versions(tmp_path: Path) -> None:
    """A second run that writes fewer files removes the first run's others (listed in its run.json), never a
    file it did not write; the footer names the library versions the runs recorded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = _fake_run(plan.Spec.of("BPR", "bpr"), "baby", 7, 0.05)
    run.result["versions"] = {"torch": "2.13.0", "numpy": "2.4.6", "pandas": "3.1.1"}
    first = outputs.Outputs("99_test", tmp_path)
    first.table(pd.DataFrame({"a": [1.0]}), "old", outputs.provenance([run]))
    first.table(pd.DataFrame({"a": [1.0]}), "kept")
    fig, _ = plt.subplots()
    first.figure(fig, "old")
    first.finish({})
    foreign = tmp_path / "results" / "99_test" / "notes.txt"
    foreign.write_text("mine")
    second = outputs.Outputs("99_test", tmp_path)
    second.table(pd.DataFrame({"a": [2.0]}), "kept")
    listing = second.finish({})
    names = sorted(p.name for p in (tmp_path / "results" / "99_test").iterdir())
    assert names == ["kept.csv", "kept.md", "notes.txt", "run.json"]
    assert not (tmp_path / "figures" / "99_test_old.png").exists() and "removed" in listing
    md_first = outputs.provenance([run])["versions"]
    assert md_first == "torch 2.13.0, numpy 2.4.6, scipy not recorded, scikit-learn not recorded, pandas 3.1.1"


def test_readable_formats_p_values_percentages_and_splits_by_data_set() -> None:
    df = pd.DataFrame({"data set": ["a", "b", "a"], "p wilcoxon (Holm)": [6.397954e-09, 0.04321, np.nan],
                       "rel diff": [0.1234, -0.05, np.nan], "device": ["cpu (x86_64, 1 threads)"] * 3,
                       "mean": [0.123456, 0.2, 0.3]})
    out = tables.readable(df)
    assert out["p wilcoxon (Holm)"].tolist() == ["< 1e-4", "0.0432", ""]
    assert out["rel diff"].tolist() == ["+12.3%", "-5.0%", ""]
    assert out["device"][0] == "cpu (x86_64, 1 thread)" and out["mean"][0] == 0.1235
    parts = tables.by_dataset(df)
    assert list(parts) == ["a", "b"] and len(parts["a"]) == 2 and "data set" not in parts["a"].columns
