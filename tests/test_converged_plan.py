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
