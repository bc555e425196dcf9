"""The converged plan (``--scale converged``) as declared: the seeds of each row family, tuning seeds apart
from reporting seeds, one epoch limit that early stopping always reaches first, and which data sets are tuned."""

from __future__ import annotations

from collections import defaultdict

from r2mr.runs import plan, tuning
from r2mr.runs.plan_specs import CONVERGED_LIMIT, PAPER_ABLATIONS, TUNE_SEEDS


def _seeds_by_label(runs: list[plan.PlannedRun]) -> dict[tuple[str, str], set[int]]:
    out: dict[tuple[str, str], set[int]] = defaultdict(set)
    for r in runs:
        out[(r.dataset, r.spec.label)].add(r.seed)
    return out


def test_ablations_the_paper_reports_take_five_seeds_the_others_three() -> None:
    runs = plan.build_plan(["tiktok"], None, "converged", notebooks=["02_rewriter_ablations"])
    seeds = _seeds_by_label(runs)
    paper = {lab for (_, lab) in seeds if lab.removesuffix(" (quick size)") in PAPER_ABLATIONS}
    assert len(paper) == len(PAPER_ABLATIONS)  # every paper row found under its sized label
    for (_, lab), s in seeds.items():
        assert len(s) == (5 if lab in paper else 3), lab
    quick = _seeds_by_label(plan.build_plan(["tiktok"], None, "quick", notebooks=["02_rewriter_ablations"]))
    assert {len(s) for s in quick.values()} == {3}  # the tutorial keeps 3 for every row
    assert {r.epochs for r in runs} == {CONVERGED_LIMIT}


def test_main_table_tunes_on_its_own_seed_and_reports_on_others() -> None:
    runs = plan.build_plan(["tiktok", "baby"], None, "converged", notebooks=["03_main_results"], tune=tuning.load())
    tune = [r for r in runs if r.stage == 1]
    assert tune and {r.seed for r in tune} == set(TUNE_SEEDS) and {r.dataset for r in tune} == {"tiktok"}
    report = [r for r in runs if r.stage != 1]
    assert not {r.seed for r in report} & set(TUNE_SEEDS)
    seeds = _seeds_by_label(report)
    assert {len(s) for (d, _), s in seeds.items() if d == "tiktok"} == {5}
    assert {len(s) for (d, _), s in seeds.items() if d == "baby"} == {3}
    baby = {lab for (d, lab) in seeds if d == "baby" and "control" not in lab}
    assert baby and all(lab.endswith(plan.NOT_TUNED_HERE) for lab in baby)  # labelled, never "tuned"
    assert {r.epochs for r in runs} == {CONVERGED_LIMIT}


def test_converged_controls_are_r2mr_at_its_selected_point_with_one_switch() -> None:
    """A content control is compared with R2MR paired by seed, so it must be R2MR at the same configuration:
    converged and tuned, at R2MR's selected point (pending until the grid selects it); untuned sets (Baby)
    and the quick tutorial keep R2MR's defaults."""
    point = {"lr": 0.00025, "knn_hop": False}
    tp = tuning.load()

    def controls(dataset: str, scale: str, selected: dict | None) -> list[plan.Spec]:
        runs = plan.build_plan([dataset], None, scale, notebooks=["03_main_results"], tune=tp, selected=selected)
        return [r.spec for r in runs if r.spec.role == "control"]

    tuned = controls("tiktok", "converged", {("tiktok", "r2mr"): point})
    assert len(tuned) == 2 * 5 and {s.tuning for s in tuned} == {"tuned"}
    for spec in tuned:
        assert {k: v for k, v in spec.overrides if k != "content"} == {**plan.QUICK["r2mr"], **point}
        assert dict(spec.overrides)["content"] in plan.CONTROLS and dict(spec.point) == point
    assert {s.tuning for s in controls("tiktok", "converged", None)} == {"pending"}
    for dataset, scale in (("baby", "converged"), ("tiktok", "quick")):
        kept = controls(dataset, scale, {(dataset, "r2mr"): point})
        assert kept and all(not set(point) & set(dict(s.overrides)) for s in kept), (dataset, scale)


def test_converged_ablations_and_reviewer_run_are_r2mr_at_its_selected_point() -> None:
    """Notebooks 01 and 02 decompose the main table's R2MR: converged on a tuned set every row is R2MR at its
    selected point with the row's own switch (pending until selected; the eta = 0.5 row and the full-rewriter
    row are the main table's R2MR run itself); the quick tutorial and untuned sets keep R2MR's defaults."""
    point, tp = {"lr": 0.00025, "knn_hop": False}, tuning.load()
    nbs = ["01_quality_statistics", "02_rewriter_ablations"]
    both = plan.build_plan(["tiktok"], None, "converged", notebooks=nbs, tune=tp, selected={("tiktok", "r2mr"): point})
    grid, runs = [r for r in both if r.stage == 1], [r for r in both if r.stage != 1]
    assert {r.model for r in grid} == {"r2mr"} and len(grid) == 6  # its grid: a plan of 01 and 02 can select it
    assert runs and {r.spec.tuning for r in runs} == {"tuned"}
    for r in runs:
        ov = dict(r.spec.overrides)
        assert {k: ov[k] for k in point} == point and dict(r.spec.point) == point, r.spec.label
    no_reviewer = next(r for r in runs if r.spec.label.startswith("no Reviewer"))
    assert dict(no_reviewer.spec.overrides)["use_reviewer"] is False  # the row's own switch kept
    main = plan.build_plan(["tiktok"], None, "converged", notebooks=["03_main_results"], tune=tp,
                           selected={("tiktok", "r2mr"): point})
    main_ids = {r.identity for r in main if r.model == "r2mr" and r.spec.role == "model"}
    full_ids = {r.identity for r in runs if r.spec.label.startswith(("full rewriter", "η = 0.5"))}
    assert full_ids and full_ids <= main_ids  # the same training runs as the main table's R2MR
    pending = [r for r in plan.build_plan(["tiktok"], None, "converged", notebooks=nbs, tune=tp) if r.stage != 1]
    assert pending and {r.spec.tuning for r in pending} == {"pending"} and {r.stage for r in pending} == {2}
    for dataset, scale in (("baby", "converged"), ("tiktok", "quick")):
        kept = plan.build_plan([dataset], None, scale, notebooks=nbs, tune=tp, selected={(dataset, "r2mr"): point})
        assert kept and all("lr" not in dict(r.spec.overrides) and r.stage == 0 for r in kept), (dataset, scale)
