"""Notebook 03's tables, built from the two plan stages (:mod:`r2mr.runs.plan`): the tuned main table beside the
published numbers (:func:`main_table`), R2MR's relative improvement over the best baseline per data set and
its average (:func:`improvement_table`), R2MR against every baseline (:func:`significance`), the whole tuning
grid (:func:`grid_table`) with what tuning changed (:func:`tuning_gain`) and the selection-bias table
(:func:`bias_table`). :func:`run_main` trains or reads back both stages in the notebook's sequential path.

Every cell of ours is mean ± sample std over seeds with n (:func:`r2mr.report.significance.format_cell`); numbers are
always the test metrics at the best-validation epoch of the configuration picked on validation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..core.names import PER_USER_METRICS
from ..runs import plan as planmod
from ..runs.notebook_runs import METRICS, PENDING, SELECTIONS, Run, run_planned
from . import curves, inference
from . import published as pub
from .significance import format_cell, mean_std_n, table_from_results

TUNED_METRICS = PER_USER_METRICS  # the per-user metrics the significance tests read


def run_main(datasets: Sequence[str], seeds: Sequence[int] | None, scale: str, epochs: int | None,
             models: str | Sequence[str] = "all", tune: Any = True, notebook: str = "03_main_results",
             **kwargs: Any) -> tuple[list[Run], list[Run]]:
    """(stage-1 grid runs, stage-2 runs) of notebook 03 (or another: ``notebook``, e.g. 05's robustness grid),
    trained or read back in order by the two-stage driver (:func:`r2mr.runs.two_stage.run_two_stages`) with the
    sequential executor; ``tune`` True:
    the declared grids (``r2mr/configs/tuning.yaml``), a :class:`r2mr.runs.tuning.TuningPlan`: those, False: no grids
    (rows labelled untuned). ``kwargs`` go to :func:`r2mr.runs.run_one` (data_dir, device,
    force_since). A row whose grid is incomplete is a ``not run`` Run, never trained at the defaults."""
    from ..data.discovery import missing_data_reason
    from ..runs import tuning
    from ..runs.notebook_runs import spec_needs_features
    from ..runs.two_stage import run_two_stages

    tp = tuning.load() if tune is True else (tune or None)
    args = dict(notebooks=[notebook], models=models, tune=tp)
    runs: dict[tuple[Any, ...], Run] = {}

    def execute(stage: int, plan: list[planmod.PlannedRun], todo: list[planmod.PlannedRun]) -> dict:
        runs.update((p.identity, r) for p, r in zip(todo, run_planned(todo, **kwargs)))
        return {p.identity: runs[p.identity].result for p in todo}

    plan = run_two_stages(lambda picked: planmod.build_plan(datasets, seeds, scale, epochs, selected=picked, **args),
                          execute)
    for p in plan:
        if p.spec.tuning == "pending":
            reason = missing_data_reason(p.dataset, kwargs.get("data_dir"), spec_needs_features(p.spec, p.dataset))
            runs[p.identity] = Run(p.spec, p.dataset, p.seed, reason or PENDING)
    return [runs[p.identity] for p in plan if p.stage == 1], [runs[p.identity] for p in plan if p.stage != 1]


def _groups(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    out: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        out.setdefault((r.dataset, r.spec.label), []).append(r)
    return out


def _config(spec: planmod.Spec) -> str:
    return {"tuned": "selected: " + planmod.describe_point(spec.point), "untuned": "untuned (defaults)",
            "pending": "after tuning"}.get(spec.tuning, "defaults")


def _scale(run: Run) -> str:
    """``quick size``: R2MR's size (quick / full; other models run at their own size)."""
    return "quick" if "(quick size)" in run.spec.label else ("full" if run.spec.model == "r2mr" else "own")


def row_provenance(group: Sequence[Run]) -> dict[str, str]:
    """Per-row provenance columns: variant, size, stop rule (in words, with how often the limit bound), the
    selected epoch (mean, min–max over seeds; 0-based) and, for R2MR, the rewrite rounds that preceded it
    ("Rewriter inactive" when none did), seeds, device and commit of the finished runs."""
    done = [r for r in group if r.ok]
    records = [r.result for r in done]
    sel = curves.selected_table({group[0].spec.label: records}).iloc[0] if done else None
    return {"variant": "; ".join(sorted({str(r.result["config"].get("variant", "–")) for r in done})),
            "size": "; ".join(sorted({_scale(r) for r in done})),
            "stop rule": curves.stop_rule_text(records) if done else "",
            "selected epoch": "" if sel is None else
            f"{sel['selected epoch (mean)']:.1f} ({sel['selected epoch (min–max)']})",
            "rewrite rounds before it": "" if sel is None else sel["rounds before selected"],
            "seeds": ",".join(str(r.seed) for r in done),
            "device": "; ".join(sorted({str(r.result.get("device_name", r.result["device"])) for r in done})),
            "commit": "; ".join(sorted({str(r.result.get("commit", "")) for r in done}))}


def main_table(runs: Sequence[Run], metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per data set and row: ours per selection protocol (mean ± std (n)), then every published row of that
    model, shown also where ours is "not run" (on Clothing, R2MR's row carries the official log's
    test-selected result, labelled with its rule)."""
    rows = []
    for (dataset, lab), group in _groups(runs).items():
        spec, done = group[0].spec, [r for r in group if r.ok]
        base = {"data set": dataset, "model": lab, "configuration": _config(spec) if done else "–"}  # no grid ran
        for sel in spec.selections if done else ("valid",):
            field = "test" if sel == "valid" else "test_selected_by_test"
            cells = {m: format_cell([r.result[field][m] for r in done]) for m in metrics}
            rows.append({**base, "row": f"ours, {SELECTIONS[sel]}" if done else group[0].status,
                         **cells, "n": len(done), **row_provenance(group)})
        for ref in pub.published(dataset, spec.model) if spec.role == "model" else []:
            rows.append({**base, "row": f"published: {ref.source.key} ({SELECTIONS[ref.source.selection]})",
                         **{m: f"{ref.metrics[m]:.4f}" if m in ref.metrics else "–" for m in metrics}, "n": "",
                         GAP_COLUMN: _gap_cell(done, ref, spec.selections), **dict.fromkeys(row_provenance([]), "")})
    return pd.DataFrame(rows)


GAP_COLUMN = "ours vs published, recall@20 [95% CI]"  # on each published row


def _gap_cell(done: Sequence[Run], ref: pub.Published, selections: Sequence[str]) -> str:
    """Our mean test Recall@20 (the published number's selection rule where we have it, else best-valid) relative
    to the published one, with the t interval over our seeds (:func:`inference.gap_to_published`)."""
    sel = ref.source.selection if ref.source.selection in selections else "valid"
    vals = [r.result["test" if sel == "valid" else "test_selected_by_test"]["recall@20"] for r in done]
    if not vals or "recall@20" not in ref.metrics:
        return "–"
    gap, lo, hi = inference.gap_to_published(float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1
                                             else float("nan"), len(vals), ref.metrics["recall@20"])
    interval = f" [{100 * lo:+.1f}, {100 * hi:+.1f}]" if np.isfinite(lo) else ""
    return f"{100 * gap:+.1f}%{interval} (ours {SELECTIONS[sel]}, n={len(vals)})"


def _means(runs: Sequence[Run], metric: str) -> dict[tuple[str, str], tuple[float, str]]:
    """{(data set, label): (mean test metric over seeds, model)} of the finished main rows (role model)."""
    return {key: (mean_std_n([r.result["test"][metric] for r in g if r.ok])[0], g[0].spec.model)
            for key, g in _groups(runs).items() if g[0].spec.role == "model" and any(r.ok for r in g)}


def improvement_table(runs: Sequence[Run], sig: pd.DataFrame | None = None,
                      metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per data set and metric: R2MR's mean, the best baseline's (by that metric's mean), and R2MR's relative
    improvement (R2MR − best) / best; with ``sig`` (:func:`significance`) the Holm-adjusted p-values of
    R2MR vs that baseline (Recall@20 and NDCG@20 tables). The last rows, "average", take the arithmetic mean
    of the per-data-set relative improvements over the data sets where both exist, per metric and over all
    metrics: the paper's abstract reports such an average (+9.20%)."""
    rows = []
    for m in metrics:
        means = _means(runs, m)
        for dataset in dict.fromkeys(d for d, _ in means):
            mine = {lab: v for (d, lab), v in means.items() if d == dataset}
            r2 = [(v, lab) for lab, (v, model) in mine.items() if model == "r2mr"]
            base = [(v, lab) for lab, (v, model) in mine.items() if model != "r2mr"]
            if not r2 or not base:
                continue
            (rv, rlab), (bv, blab) = r2[0], max(base)
            row = {"data set": dataset, "metric": m, "R2MR": rv, "best baseline": blab, "baseline": bv,
                   "rel improvement": (rv - bv) / bv if bv else math.nan}
            key = (m, f"{dataset}: {rlab}", f"{dataset}: {blab}")
            if sig is not None and len(sig):
                for col in ("p wilcoxon (Holm)", "p t-test (Holm)"):
                    row[col] = float(sig.loc[key, col]) if key in sig.index else np.nan
            rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    avg = df.groupby("metric", sort=False)["rel improvement"].agg(["mean", "count"]).reset_index()
    avg_rows = [{"data set": f"average over {int(c)} data set(s)", "metric": m, "rel improvement": v}
                for m, v, c in avg.itertuples(index=False)]
    avg_rows.append({"data set": "average over data sets and metrics", "metric": "all",
                     "rel improvement": float(df["rel improvement"].mean())})
    return pd.concat([df, pd.DataFrame(avg_rows)], ignore_index=True)


def significance(runs: Sequence[Run], metrics: Sequence[str] = TUNED_METRICS, reference: str = "r2mr",
                 role: str = "model") -> pd.DataFrame:
    """R2MR against every baseline on every data set (rows ``(metric, "data set: R2MR", "data set: other")``),
    Wilcoxon over users and t-test over seeds, Holm over the whole table per metric. Runs without per-user
    metrics (older store entries) are left out; a label with none left gives no row."""
    groups = {f"{d}: {lab}": [(r.result, r.folder) for r in g if r.ok and "per_user" in r.result]
              for (d, lab), g in _groups(runs).items() if g[0].spec.role == role}
    groups = {k: v for k, v in groups.items() if v}
    model = {f"{d}: {lab}": g[0].spec.model for (d, lab), g in _groups(runs).items()}
    pairs = [(a, b) for a in groups if model[a] == reference for b in groups
             if model[b] != reference and a.split(": ")[0] == b.split(": ")[0]]
    return pairs_table(groups, pairs, metrics)


def against_reference(runs: Sequence[Run], reference: str, metrics: Sequence[str] = TUNED_METRICS) -> pd.DataFrame:
    """Each row label vs the ``reference`` label (e.g. every ablation vs the full model), per data set; the
    same tests as :func:`significance`, Holm over the whole table per metric."""
    groups = {f"{d}: {lab}": [(r.result, r.folder) for r in g if r.ok and "per_user" in r.result]
              for (d, lab), g in _groups(runs).items()}
    groups = {k: v for k, v in groups.items() if v}
    pairs = [(k, f"{k.split(': ')[0]}: {reference}") for k in groups
             if not k.endswith(f": {reference}") and f"{k.split(': ')[0]}: {reference}" in groups]
    return pairs_table(groups, pairs, metrics)


def pairs_table(groups: dict[str, list[tuple[Any, Any]]], pairs: Sequence[tuple[str, str]],
                metrics: Sequence[str] = TUNED_METRICS) -> pd.DataFrame:
    """:func:`r2mr.report.significance.table_from_results` per metric, stacked (index: metric, A, B)."""
    if not pairs:
        return pd.DataFrame()
    return pd.concat({m: table_from_results(groups, pairs, m) for m in metrics}, names=["metric"])


def is_default(run: Run) -> bool:
    """Whether ``run``'s tuning-grid point is the model's default configuration on its data set (every key of
    the point equals the value the model would take without the point: its class, train and data-set
    defaults, under the same scale preset)."""
    from ..runs.experiment import make_configs

    point = dict(run.spec.point)
    base = {k: v for k, v in run.spec.overrides if k not in point}
    cls, mcfg, tcfg = make_configs(run.spec.model, base, dataset=run.dataset)
    mcfg = cls.resolved(mcfg)  # R2MR: its variant's presets (knn_hop None -> True under "official")
    return all(getattr(mcfg, k, getattr(tcfg, k, None)) == v for k, v in point.items())


def grid_table(grid: Sequence[Run], metric: str = "recall@20") -> pd.DataFrame:
    """Every tuning point of every model and data set: configuration, ``default`` (the untuned configuration),
    n seeds, valid and test mean and std, ``selected`` (best mean valid) and ``best test`` (reported, never
    used). Incomplete grids are listed with their status."""
    from ..runs.tuning import select

    by_model: dict[tuple[str, str], list[Run]] = {}
    for r in grid:
        by_model.setdefault((r.dataset, r.spec.model), []).append(r)
    parts = []
    for (dataset, model), runs in by_model.items():
        if not all(r.ok for r in runs):
            bad = next(r for r in runs if not r.ok)
            parts.append(pd.DataFrame([{"data set": dataset, "model": planmod.label(model), "status": bad.status}]))
            continue
        _, table = select([(dict(r.spec.point), r.result) for r in runs], metric)
        keys = [c for c in table.columns if c in {k for r in runs for k, _ in r.spec.point}]
        table.insert(0, "configuration", [planmod.describe_point({k: row[k] for k in keys})
                                          for _, row in table.iterrows()])
        defaults = {planmod.describe_point(r.spec.point): is_default(r) for r in runs}
        table.insert(1, "default", table["configuration"].map(defaults))
        parts.append(table.drop(columns=keys).assign(**{"data set": dataset, "model": planmod.label(model),
                                                         "status": "ok"}))
    if not parts:
        return pd.DataFrame()
    df = pd.concat(parts, ignore_index=True)
    return df[["data set", "model", *[c for c in df.columns if c not in ("data set", "model")]]]


def tuning_gain(grid: pd.DataFrame, metric: str = "recall@20") -> pd.DataFrame:
    """Untuned against tuned, per data set and model, from :func:`grid_table`'s output: the default point and
    the selected point with their mean valid and test ``metric`` (the grid's seeds and epoch cap) and the
    differences. Selection is on valid; the test columns only show what the selection bought. A grid without
    the default point (fixed to published per-data-set values) says so, with blank default columns."""
    rows = []
    ok = grid[grid["status"] == "ok"] if len(grid) else grid
    for (dataset, model), g in ok.groupby(["data set", "model"], sort=False):
        d, s = g[g["default"].astype(bool)], g[g["selected"].astype(bool)]
        if s.empty:
            continue
        s = s.iloc[0]
        d = d.iloc[0] if len(d) else pd.Series({"configuration": "not a grid point", f"valid {metric}": np.nan,
                                                 f"test {metric}": np.nan})
        rows.append({"data set": dataset, "model": model, "default": d["configuration"],
                     "selected": s["configuration"], "n seeds": int(s["n seeds"]),
                     f"valid {metric} default": d[f"valid {metric}"], f"valid {metric} selected": s[f"valid {metric}"],
                     f"test {metric} default": d[f"test {metric}"], f"test {metric} selected": s[f"test {metric}"],
                     f"test {metric} gain %": 100 * (s[f"test {metric}"] / d[f"test {metric}"] - 1)
                     if d[f"test {metric}"] > 0 else np.nan})
    return pd.DataFrame(rows)


def bias_table(main: Sequence[Run], grid: Sequence[Run], metric: str = "recall@20") -> pd.DataFrame:
    """:func:`r2mr.report.selection_bias.selection_bias_table` per data set: each model's selected rows (best test
    epoch) and its tuning grid (best test point; both), absolute and relative."""
    from .selection_bias import selection_bias_table

    parts = {}
    for dataset in dict.fromkeys(r.dataset for r in [*main, *grid]):
        runs = {planmod.label(r.spec.model): [] for r in main if r.dataset == dataset and r.spec.role == "model"}
        for r in main:
            if r.dataset == dataset and r.spec.role == "model" and r.ok:
                runs[planmod.label(r.spec.model)].append(r.result)
        grids: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        for r in grid:
            if r.dataset == dataset and r.ok:
                grids.setdefault(planmod.label(r.spec.model), []).append((dict(r.spec.point), r.result))
        table = selection_bias_table(runs, grids, metric)
        if len(table):
            parts[dataset] = table
    return pd.concat(parts, names=["data set"]) if parts else pd.DataFrame()
