"""The declared run plan: every training run the notebooks need, as data (data set, model, overrides, seed,
scale, epochs, purpose), built from the notebooks' grids. The parameters and specs below live in
:mod:`r2mr.runs.plan_specs` and are re-exported here (notebooks read them as ``plan.X``); this module builds the plan.

* Grids: :func:`quality_specs` (notebook 01), :func:`ablation_specs`, :func:`sensitivity_specs` and
  :func:`eta_specs` (02), :func:`main_specs` (03; 04 reads the first seed of 03's runs).
* Two stages for notebook 03: stage 1 is every model's tuning grid (``r2mr/configs/tuning.yaml``, purpose ``tune``,
  :data:`r2mr.runs.tuning` declares its seeds per point); stage 2 is the main table, each model at the point
  :func:`r2mr.runs.tuning.select` picks by mean validation Recall@20 (:func:`select_points`). Until a grid is
  stored its stage-2 rows are "pending" (printed "after tuning"). Without a tuning plan the rows run at the
  models' defaults and are labelled :data:`UNTUNED`.
* Seeds (:func:`seeds_for`): ``--seeds`` given: that list for every row (a tuning point: its first
  ``tuning.seeds``); ``auto`` (the default): :data:`MAIN_SEEDS` per data set for the main table,
  :data:`ABLATION_SEEDS` for notebook 02, the first seed for 01, all from :data:`DEFAULT_SEEDS`.
* Epoch caps (:data:`EPOCH_CAPS`): the quick scale caps every run (tuning points lower than the rest) so the
  default ``run_all.sh`` stays short; the full scale uses each model's own limit with early stopping.
* :func:`build_plan` lays those grids over data sets and seeds and merges runs that two notebooks share
  (:class:`PlannedRun`, with every purpose it serves). ``python -m r2mr plan`` prints it
  (:mod:`r2mr.cli.plan_commands`); ``run_all.sh`` executes it (:mod:`r2mr.runs.executors`) before the notebooks,
  which then read every run back from the store; a notebook executed on its own trains what it misses, sequentially.

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..core.errors import ConfigError
from .plan_specs import (
    ABLATION_SEEDS,
    ABLATIONS,
    AUTO,
    CODEBOOKS,
    CONTROLS,
    DEFAULT_SEEDS,
    EPOCH_CAPS,
    ETAS,
    LABELS,
    MAIN_SEEDS,
    MAIN_SEEDS_OTHER,
    PERSPECTIVES,
    QUICK,
    ROBUST_MODELS,
    ROBUSTNESS_SEEDS,
    ROBUSTNESS_VARIANTS,
    SCALES,
    SEED_LIMIT,
    TUNED_DATASETS,
    Spec,
    ablation_specs,
    check_scale,
    describe_point,
    epoch_cap,
    eta_specs,
    is_paper_ablation,
    label,
    main_specs,
    model_spec,
    parse_list,
    parse_seed_spec,
    parse_seeds,
    quality_specs,
    quick_overrides,
    seeds_for,
    sensitivity_specs,
)

__all__ = [  # the plan's names and, re-exported for the notebooks and callers, those of r2mr.runs.plan_specs
    "NOTEBOOKS", "ROBUSTNESS", "UNTUNED", "PlannedRun", "robustness_grid", "build_plan", "grid_specs",
    "notebook_grid", "notebook_prefixes",
    "select_points", "tuned_specs",
    "ABLATION_SEEDS", "ABLATIONS", "AUTO", "CODEBOOKS", "CONTROLS", "DEFAULT_SEEDS", "EPOCH_CAPS", "ETAS", "LABELS",
    "MAIN_SEEDS", "MAIN_SEEDS_OTHER", "PERSPECTIVES", "QUICK", "ROBUST_MODELS", "ROBUSTNESS_SEEDS",
    "ROBUSTNESS_VARIANTS", "SCALES", "SEED_LIMIT", "Spec", "ablation_specs",
    "check_scale", "describe_point", "epoch_cap", "eta_specs", "label", "main_specs", "model_spec", "parse_list",
    "parse_seed_spec", "parse_seeds", "quality_specs", "quick_overrides", "seeds_for", "sensitivity_specs",
]


UNTUNED = " — untuned (defaults)"  # label suffix of main rows trained without the tuning stage
# converged plan, data sets outside TUNED_DATASETS: the models' published (MMRec) configurations
NOT_TUNED_HERE = " — MMRec's configuration, not tuned here"
ROBUSTNESS = "05_robustness"
NOTEBOOKS = ("01_quality_statistics", "02_rewriter_ablations", "03_main_results", "04_efficiency", ROBUSTNESS)


# ---- stage 1 and 2: the tuning grid and the tuned main rows -------------------------------------------------

def grid_specs(model: str, scale: str, dataset: str | None, tune: Any) -> list[Spec]:
    """Stage 1: ``model``'s tuning grid on ``dataset`` (``tune``: a :class:`r2mr.runs.tuning.TuningPlan`), role
    ``tune``, each point on top of the scale's preset."""
    from .tuning import points

    if model not in tune.models:  # a model of your own without a declared grid: not tuned
        return []
    pts = points(tune, model, dataset)
    return [replace(model_spec(model, scale, role="tune", label=f"{label(model)} grid {i}/{len(pts)}: "
                                                             f"{describe_point(p)}", **p),
                    tuning="grid", point=tuple(sorted(p.items()))) for i, p in enumerate(pts, 1)]


def tuned_specs(dataset: str, models: str | Sequence[str] = "all", scale: str = "full", tune: Any = None,
                selected: dict[tuple[str, str], dict[str, Any]] | None = None,
                registered: Sequence[str] | None = None, untuned: str = " — untuned (defaults)") -> list[Spec]:
    """Stage 2: the main table's rows on ``dataset``. With a tuning plan each model runs at its selected point
    (``selected[(dataset, model)]``; absent: a ``pending`` row); without one at its defaults, labelled
    ``untuned`` (:data:`UNTUNED`, or :data:`NOT_TUNED_HERE`). R2MR's content controls: at the converged scale,
    where R2MR is tuned, at R2MR's selected point (so that a control is R2MR with one switch, paired by seed);
    otherwise at R2MR's defaults (shared with notebook 02)."""
    out = []
    for spec in main_specs(models, scale, registered=registered):
        if spec.role == "control":
            out.append(at_r2mr_point(spec, dataset, scale, tune, selected))
        elif spec.role != "model":
            out.append(spec)
        elif tune is None or spec.model not in tune.models:
            out.append(replace(spec, label=spec.label + untuned, tuning="untuned"))
        elif (point := (selected or {}).get((dataset, spec.model))) is None:
            out.append(replace(spec, tuning="pending"))
        else:
            out.append(replace(model_spec(spec.model, scale, **point), tuning="tuned",
                               point=tuple(sorted(point.items()))))
    return out


def _r2mr_tuned(scale: str, tune: Any) -> bool:
    """Whether R2MR-derived rows run at R2MR's selected point: the converged scale with R2MR's grid declared."""
    return scale == "converged" and tune is not None and "r2mr" in tune.models


def at_r2mr_point(spec: Spec, dataset: str, scale: str, tune: Any,
                  selected: dict[tuple[str, str], dict[str, Any]] | None) -> Spec:
    """An R2MR-derived row (a content control, an ablation, a sensitivity, the Reviewer-statistics run) at
    R2MR's selected point on ``dataset`` where R2MR is tuned at the converged scale (``tune`` given for that
    set), so that each row is R2MR at the main table's configuration with its own switches; pending until the
    grid selects it. Elsewhere (the quick tutorial, untuned sets) ``spec`` unchanged: R2MR's defaults."""
    if spec.model != "r2mr" or not _r2mr_tuned(scale, tune):
        return spec
    point = (selected or {}).get((dataset, "r2mr"))
    if point is None:
        return replace(spec, tuning="pending")
    preset = quick_overrides("r2mr", scale)[1]
    own = {k: v for k, v in spec.overrides if k not in preset or preset[k] != v}  # the row's own switches
    return replace(spec, overrides=tuple(sorted({**preset, **point, **own}.items())), tuning="tuned",
                   point=tuple(sorted(point.items())))


def select_points(items: Any, metric: str = "recall@20") -> dict[tuple[str, str], dict[str, Any]]:
    """``{(data set, model): selected point}`` from ``[(data set, spec, result or None), ...]`` of stage-1
    runs; a (data set, model) whose grid misses a result is left out (its stage-2 rows stay pending)."""
    from .tuning import select

    groups: dict[tuple[str, str], list[tuple[dict[str, Any], Any]]] = {}
    for dataset, spec, res in items:
        if spec.role == "tune":
            groups.setdefault((dataset, spec.model), []).append((dict(spec.point), res))
    return {key: select(pairs, metric)[0] for key, pairs in groups.items()
            if all(res is not None for _, res in pairs)}


# ---- the plan ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedRun:
    """One training run of the plan and the notebooks (purposes) that need it."""

    dataset: str
    spec: Spec
    seed: int
    scale: str
    epochs: int | None = None  # max epochs (None: the model's own limit, with early stopping)
    purposes: tuple[str, ...] = ()

    @property
    def model(self) -> str:
        return self.spec.model

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.spec.overrides)

    @property
    def stage(self) -> int:
        """1: a tuning-grid point; 2: a main row that needs the grid's selection; 0: anything else."""
        return 1 if self.spec.role == "tune" else (2 if self.spec.tuning in ("tuned", "pending") else 0)

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes two planned runs the same training run (labels and purposes aside). A pending row is its
        own run until its configuration is known, and a grid point stays apart from a main row even when both
        are the same training run (same seed and epoch cap): the store then trains it once."""
        stage = ("pending",) if self.spec.tuning == "pending" else (("grid",) if self.spec.role == "tune" else ())
        return (self.dataset, self.spec.model, self.spec.overrides, self.seed, self.epochs, *stage)


def notebook_grid(notebook: str, datasets: Sequence[str], seeds: Sequence[int] | None, scale: str = "quick",
                  epochs: int | None = None, variant: str = "official", models: str | Sequence[str] = "all",
                  etas: Sequence[float] | None = None, registered: Sequence[str] | None = None,
                  tune: Any = None, selected: dict[tuple[str, str], dict[str, Any]] | None = None
                  ) -> list[PlannedRun]:
    """The runs one notebook needs, in its table order (data set, spec, seed); ``seeds`` None: ``auto``.
    Notebook 03 (with ``tune``): stage 1 (every model's grid) first, then stage 2 (:func:`tuned_specs`)."""
    check_scale(scale)
    cap, tune_cap = epoch_cap(scale, epochs), epoch_cap(scale, epochs, "tune")
    tune_n = getattr(tune, "seeds", 2)
    out: list[PlannedRun] = []
    for d in datasets:
        tune_d = tune if scale != "converged" or d in TUNED_DATASETS else None
        # converged, R2MR tuned here: 01 and 02 are R2MR at its selected point, so they list R2MR's grid (stage 1,
        # the same runs as notebook 03's) and a plan of these notebooks alone can select it
        r2mr_grid = [] if not _r2mr_tuned(scale, tune_d) else [
            (s, seeds_for(seeds, d, "tune", tune_n, scale), tune_cap) for s in grid_specs("r2mr", scale, d, tune_d)]
        if notebook == "01_quality_statistics":
            rows = r2mr_grid + [(at_r2mr_point(s, d, scale, tune_d, selected), seeds_for(seeds, d, "ablation"), cap)
                                for s in quality_specs(scale, variant)]
        elif notebook == "02_rewriter_ablations":
            specs = (ablation_specs(scale, variant) + sensitivity_specs(scale, variant)
                     + eta_specs(etas or ETAS[scale], scale, variant))
            rows = r2mr_grid + [
                (at_r2mr_point(s, d, scale, tune_d, selected),
                 seeds_for(seeds, d, "paper" if is_paper_ablation(s, scale) else "ablation", scale=scale), cap)
                for s in specs]
        elif notebook in ("03_main_results", "04_efficiency"):
            kind = "main" if notebook == "03_main_results" else "first"
            grid = [] if tune_d is None else [  # 04 alone needs 03's grid too (merged when both run)
                (s, seeds_for(seeds, d, "tune", tune_n, scale), tune_cap)
                for m in [s.model for s in main_specs(models, scale, False, registered)]
                for s in grid_specs(m, scale, d, tune_d)]
            untuned = NOT_TUNED_HERE if tune is not None and tune_d is None else UNTUNED
            rows = grid + [(s, seeds_for(seeds, d, kind), cap)
                           for s in tuned_specs(d, models, scale, tune_d, selected, registered, untuned)]
        else:
            raise ConfigError(f"notebook '{notebook}' has no run grid; fix: use one of {', '.join(NOTEBOOKS)}")
        out += [PlannedRun(d, s, seed, scale, e, ("tune" if s.role == "tune" else notebook,))
                for s, seed_list, e in rows for seed in seed_list]
    return out


def robustness_grid(datasets: Sequence[str], seeds: Sequence[int] | None, scale: str = "converged",
                    epochs: int | None = None, registered: Sequence[str] | None = None, tune: Any = None,
                    selected: dict[tuple[str, str], dict[str, Any]] | None = None, **_: Any) -> list[PlannedRun]:
    """The robustness runs (:data:`ROBUSTNESS`): per data set, :data:`ROBUST_MODELS` and R2MR's frozen-feature
    control on the clean set (03's rows and the grids that select them, shared with 03) and, at the selected
    configuration of the clean set, on each variant of :data:`ROBUSTNESS_VARIANTS` (``<set>~<variant>``,
    :data:`ROBUSTNESS_SEEDS` seeds unless ``seeds`` is given)."""
    def kept(spec: Spec) -> bool:
        return spec.role in ("model", "tune") or dict(spec.overrides).get("content") == "frozen"

    out: list[PlannedRun] = []
    cap = epoch_cap(scale, epochs)
    for d in datasets:
        clean = notebook_grid("03_main_results", [d], seeds, scale, epochs, models=list(ROBUST_MODELS),
                              registered=registered, tune=tune, selected=selected)
        out += [replace(r, purposes=("tune",) if r.spec.role == "tune" else (ROBUSTNESS,))
                for r in clean if kept(r.spec)]
        tune_d = tune if scale != "converged" or d in TUNED_DATASETS else None
        untuned = NOT_TUNED_HERE if tune is not None and tune_d is None else UNTUNED
        specs = [s for s in tuned_specs(d, list(ROBUST_MODELS), scale, tune_d, selected, registered, untuned)
                 if kept(s)]
        pool = list(seeds) if seeds is not None else list(DEFAULT_SEEDS[:ROBUSTNESS_SEEDS])
        out += [PlannedRun(f"{d}~{v}", s, seed, scale, cap, (ROBUSTNESS,))
                for v in ROBUSTNESS_VARIANTS.get(d, ()) for s in specs for seed in pool]
    return out


def build_plan(datasets: Sequence[str], seeds: Sequence[int] | None, scale: str = "quick",
               epochs: int | None = None, notebooks: Sequence[str] = NOTEBOOKS,
               table_datasets: Sequence[str] | None = None, **grid: Any) -> list[PlannedRun]:
    """Every run the ``notebooks`` need on ``datasets``, each once (purposes merged), stage-1 tuning runs
    first, then in notebook order. ``seeds`` None: ``auto`` (:func:`seeds_for`). The main table (03, 04) lists
    ``table_datasets`` (default ``datasets``: it also shows absent Amazon sets). ``grid`` goes to
    :func:`notebook_grid` (variant, models, etas, registered, tune, selected)."""
    merged: dict[tuple[Any, ...], PlannedRun] = {}
    for nb in notebooks:
        if nb not in NOTEBOOKS:
            continue  # 00_data trains nothing
        main = nb in ("03_main_results", "04_efficiency")
        names = table_datasets if main and table_datasets is not None else datasets
        runs = (robustness_grid(datasets, seeds, scale, epochs, **grid) if nb == ROBUSTNESS
                else notebook_grid(nb, names, seeds, scale, epochs, **grid))
        for run in runs:
            old = merged.get(run.identity)
            merged[run.identity] = run if old is None else replace(old, purposes=tuple(
                dict.fromkeys([*old.purposes, *run.purposes])))
    return sorted(merged.values(), key=lambda r: r.stage != 1)  # stable: stage 1 first, else plan order


def notebook_prefixes(names: Sequence[str]) -> list[str]:
    """Notebook names of the plan selected by prefixes (``["02", "03"]``); every notebook for none."""
    if not names:
        return list(NOTEBOOKS)
    return [nb for nb in NOTEBOOKS if any(nb.startswith(p) for p in names)]
