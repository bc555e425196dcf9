"""The notebooks' result tables: our numbers beside the published ones (:func:`compare`, :func:`wide_table`),
the checked numbers of a quick run (:func:`checked_metrics`), ablations, sensitivities and timings, and the
cell formatting they share. Input: runs from :mod:`r2mr.runs.notebook_runs` or its tidy
:func:`r2mr.runs.notebook_runs.summarise` table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.formatting import fmt_mean_std
from ..data.discovery import load_dataset_named
from ..runs.notebook_runs import METRICS, SELECTIONS, Run, artifacts, summarise
from . import inference
from . import published as pub
from . import quality as analysis


def rel_diff(ours: float, published: float) -> float:
    """(ours - published) / published, as a fraction; NaN where either is missing."""
    if ours is None or published is None or not np.isfinite(ours) or not np.isfinite(published) or published == 0:
        return np.nan
    return (ours - published) / published


def compare(tidy: pd.DataFrame) -> pd.DataFrame:
    """Add ``published``, ``source``, ``source_selection``, ``rel_diff`` and its 95% interval ``rel_diff_lo`` /
    ``rel_diff_hi`` (:func:`r2mr.report.inference.gap_to_published`; first reference of each data set).

    A published number sits on our row of the same selection protocol; if we have no such row for that model,
    on our best-valid row (``source_selection`` then tells the protocols differ)."""
    out = tidy.copy()
    for col in ("published", "rel_diff", "rel_diff_lo", "rel_diff_hi"):
        out[col] = np.nan
    out["source"], out["source_selection"] = "", ""
    for idx, row in out.iterrows():
        refs = pub.published(row["dataset"], row["model"])
        if not refs or row["role"] != "model":
            continue
        ref, metric = refs[0], row["metric"]
        ours_sels = set(out[(out.dataset == row["dataset"]) & (out.label == row["label"])].selection)
        target = ref.source.selection if ref.source.selection in ours_sels else "valid"
        if row["selection"] != target or metric not in ref.metrics:
            continue
        out.loc[idx, ["published", "source", "source_selection"]] = [ref.metrics[metric], ref.source.key,
                                                                     ref.source.selection]
        out.loc[idx, ["rel_diff", "rel_diff_lo", "rel_diff_hi"]] = inference.gap_to_published(
            row["mean"], row["std"], int(row["n_seeds"]), ref.metrics[metric])
    return out


def fmt_pct(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{100 * x:+.1f}%"


def wide_table(tidy: pd.DataFrame, metrics: Sequence[str] = METRICS, references: bool = True) -> pd.DataFrame:
    """A reader's table: per data set and label, our row per selection, then each published row and its Δ.

    ``tidy`` comes from :func:`summarise`; rows keep its order. A label that was not run has one row whose
    ``row`` column carries the reason."""
    out = []
    for (dataset, lab), g in tidy.groupby(["dataset", "label"], sort=False):
        model, role = g.model.iloc[0], g.role.iloc[0]
        if (g.status != "ok").all():
            out.append({"dataset": dataset, "model": lab, "row": g.status.iloc[0], **{m: "" for m in metrics}})
            continue
        ours = {}
        for sel, gs in g.groupby("selection", sort=False):
            vals = gs.set_index("metric")
            n = int(vals.n_seeds.iloc[0])
            ours[sel] = vals["mean"]
            out.append({"dataset": dataset, "model": lab,
                        "row": f"ours, {SELECTIONS[sel]} ({n} seed{'s' if n > 1 else ''})",
                        **{m: fmt_mean_std(vals["mean"].get(m), vals["std"].get(m)) for m in metrics}})
        if not references or role != "model":
            continue
        for ref in pub.published(dataset, model):
            sel = ref.source.selection if ref.source.selection in ours else "valid"
            row = f"published: {ref.source.key} ({SELECTIONS[ref.source.selection]})"
            out.append({"dataset": dataset, "model": lab, "row": row,
                        **{m: f"{ref.metrics[m]:.4f}" if m in ref.metrics else "—" for m in metrics}})
            out.append({"dataset": dataset, "model": lab, "row": f"Δ ours ({sel}) vs {ref.source.key}",
                        **{m: fmt_pct(rel_diff(ours[sel].get(m, np.nan), ref.metrics.get(m, np.nan)))
                           for m in metrics}})
    return pd.DataFrame(out, columns=["dataset", "model", "row", *metrics])


def checked_metrics(tidy: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The quick run's checked numbers: mean per (data set, label, selection) x metric, rounded."""
    ok = tidy[tidy.status == "ok"]
    table = ok.pivot_table(index=["dataset", "label", "selection"], columns="metric", values="mean", sort=False)
    return table[[m for m in METRICS if m in table.columns]].round(digits)


def run_extras(run: Run) -> dict[str, float]:
    """Rewrite totals and quality shares of one finished R2MR run (empty for other models)."""
    if not run.ok or not run.result.get("artifacts") or run.spec.model != "r2mr":
        return {}
    art = artifacts(run)
    s = analysis.scores_of(art)
    shares = analysis.state_shares(analysis.area_labels(s, float(art["eta"])))
    return {"eta": float(art["eta"]), **analysis.rewrite_totals(art), **{f"share {k}": v for k, v in shares.items()}}


def ablation_table(runs: Sequence[Run], metrics: Sequence[str] = METRICS,
                   reference: str | None = None) -> pd.DataFrame:
    """Per data set and spec: n seeds, test metrics (mean ± std over seeds, best-valid epoch), the relative change of
    Recall@20 against the ``reference`` label (default: the data set's first row, "row 1"), and the mean
    rewrite statistics (accepted rewrites, feature rows rewritten, share of disparity items at the end)."""
    tidy = summarise(runs, metrics)
    extras: dict[tuple[str, str], list[dict[str, float]]] = {}
    for r in runs:
        extras.setdefault((r.dataset, r.spec.label), []).append(run_extras(r))
    rows = []
    for (dataset, lab), g in tidy.groupby(["dataset", "label"], sort=False):
        ref = reference or tidy[tidy.dataset == dataset].label.iloc[0]
        vals = g.set_index("metric")
        base = tidy[(tidy.dataset == dataset) & (tidy.label == ref) & (tidy.metric == "recall@20")]["mean"]
        ex = pd.DataFrame([e for e in extras.get((dataset, lab), []) if e])
        n = int(vals.n_seeds.max())
        row = {"data set": dataset, "variant": lab, "role": g.role.iloc[0], "status": g.status.iloc[0], "n seeds": n,
               **{m: fmt_mean_std(vals["mean"].get(m), vals["std"].get(m)) for m in metrics},
               "Δ recall@20 vs row 1": fmt_pct(rel_diff(vals["mean"].get("recall@20"),
                                                        base.iloc[0] if len(base) else np.nan))}
        for col in ("accepted", "rows rewritten", "share disparity"):
            row[col] = float(ex[col].mean()) if col in ex else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def sensitivity_table(runs: Sequence[Run], key: str = "eta") -> pd.DataFrame:
    """Per data set and value of config ``key`` (read from each run's resolved config; e.g. ``eta``,
    ``n_perspectives``, ``rw_codebook``): Recall@20 and NDCG@20 (mean, sample std over seeds, n), and for R2MR
    the share of disparity items in the final scores and the accepted rewrites (means over seeds)."""
    rows = []
    for r in runs:
        if not r.ok:
            continue
        ex = run_extras(r)
        rows.append({"data set": r.dataset, key: r.result["config"].get(key, np.nan), "seed": r.seed,
                     "recall@20": r.result["test"]["recall@20"], "ndcg@20": r.result["test"]["ndcg@20"],
                     "share disparity": ex.get("share disparity", np.nan), "accepted": ex.get("accepted", np.nan)})
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows).groupby(["data set", key]).agg(**{
        "recall@20": ("recall@20", "mean"), "recall@20 std": ("recall@20", "std"),
        "ndcg@20": ("ndcg@20", "mean"), "ndcg@20 std": ("ndcg@20", "std"),
        "share disparity": ("share disparity", "mean"), "accepted": ("accepted", "mean"), "seeds": ("seed", "count")})
    return out.rename_axis(index={key: "η" if key == "eta" else key})


def eta_table(runs: Sequence[Run]) -> pd.DataFrame:
    """:func:`sensitivity_table` over the quality threshold η (index level named ``η``)."""
    return sensitivity_table(runs, "eta")


def timing_table(runs: Sequence[Run], data_dir: str | Path | None = None) -> pd.DataFrame:
    """Per data set and spec: training interactions, seconds per training epoch, seconds per evaluation of
    valid + test, epochs run (means over seeds) and the device, from the runs' own timings."""
    sizes: dict[str, int] = {}
    rows = []
    for r in runs:
        if not r.ok:
            continue
        if r.dataset not in sizes:
            sizes[r.dataset] = len(load_dataset_named(r.dataset, data_dir, features=False).train)
        rows.append({"data set": r.dataset, "model": r.spec.label, "train interactions": sizes[r.dataset],
                     "s/epoch": r.result["seconds_per_epoch"], "s/eval": r.result["seconds_per_eval"],
                     "epochs": r.result["epochs_run"], "device": r.result.get("device_name", r.result["device"])})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    return df.groupby(["data set", "model", "train interactions", "device"], sort=False).mean().reset_index()


def fmt_p(p: float) -> str:
    """A p-value for reading: ``< 1e-4`` below 1e-4, else four decimals; blank when missing."""
    if p is None or not np.isfinite(p):
        return ""
    return "< 1e-4" if p < 1e-4 else f"{p:.4f}"


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """A copy for display (the CSV keeps full precision): p-value columns (``p ...``) as :func:`fmt_p`,
    relative columns (``rel ...``) as signed percentages, other floats to 4 decimals, "1 threads" as
    "1 thread"."""
    out = df.copy()
    for col in out.columns:
        name = str(col)
        if name.startswith("p ") and pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(fmt_p)
        elif name.startswith("rel ") and pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(lambda x: "" if not np.isfinite(x) else f"{x:+.1%}")
        elif pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(4)
        elif out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: v.replace(" 1 threads", " 1 thread") if isinstance(v, str) else v)
    return out


def by_dataset(df: pd.DataFrame, column: str = "data set") -> dict[str, pd.DataFrame]:
    """``df`` split by data set, in order of first appearance, each readable (:func:`readable`) and whole."""
    if column not in df.columns:
        return {"all": readable(df)}
    return {str(ds): readable(part.drop(columns=column)) for ds, part in df.groupby(column, sort=False)}
