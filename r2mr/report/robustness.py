"""Robustness to corrupted modalities: how much each model loses on a corrupted variant of a data set
(:mod:`r2mr.data.corrupt`), whether R2MR loses less, whether its Reviewer finds the corrupted items, and
where those items end (quality areas, rewritten).

* :func:`drop_table`: per model, the drop from the clean set (corrupted − clean, per seed) with its interval
  and relative drop, and against the reference (R2MR) the difference of relative drops with a Welch interval
  and Holm over the baselines — the test of "R2MR degrades less". A model on the clean and the corrupted set
  with the same seed starts from the same parameters and sampler stream, so the drop is paired by seed
  (only the seeds run on both enter); two models' drops share no randomness, so they are compared by Welch
  (see :mod:`r2mr.report.inference`).
  :func:`drop_tables_from_archive` builds one per variant from the archive (each variant run matched with
  the clean runs of the same model and configuration; tuning seeds left out).
* :func:`auc_table`: the Reviewer's ROC-AUC of "a low score flags the corrupted modality"
  (:func:`r2mr.report.quality.roc`) per feature treatment (trained, frozen), model state (best valid, ...) and
  corrupted modality, mean and sample std over seeds.
* :func:`area_counts`: per corrupted modality, how many corrupted (and clean) items lie in each quality area
  and how many had that modality rewritten (an accepted rewrite: the Rewriter overwrites only accepted rows).
* :func:`corruption_masks`: the ground truth: a variant's swapped items (from its name), or the synthetic
  set's planted corruption (its ``quality.csv``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import corrupt
from . import inference
from . import quality as analysis
from .significance import RunSet, holm, marker

FROZEN = " (frozen features)"  # the row suffix of R2MR's frozen-feature control (row_label)


def corruption_masks(dataset: str, n_items: int, folder: str | Path | None = None) -> dict[str, np.ndarray]:
    """``{modality: bool (n_items,)}`` of the corrupted items: a variant's swapped modality (from its name
    alone), else the planted corruption in ``folder``'s ``quality.csv`` (the synthetic set), else none."""
    c = corrupt.parse(dataset)
    if c is not None:
        return {c.modality: corrupt.corrupted_items(dataset, n_items)}
    if folder is not None and (Path(folder) / "quality.csv").is_file():
        from ..data.synth import load_quality

        return analysis.corruption_masks(load_quality(folder), n_items)
    return {}


# ---- (a) the drop from clean -----------------------------------------------------------------------------------

def _per_seed_relative_drop(clean: RunSet, bad: RunSet) -> dict[int, float]:
    return {s: bad.seeds[s] / clean.seeds[s] - 1 for s in sorted(set(clean.seeds) & set(bad.seeds))
            if clean.seeds[s]}


def drop_table(clean: Mapping[str, RunSet], corrupted: Mapping[str, RunSet], reference: str = "R2MR",
               alpha: float = inference.ALPHA) -> pd.DataFrame:
    """Per label present in both (index): seeds paired, mean clean and corrupted, ``drop`` (mean over the
    paired seeds of corrupted − clean) with its t interval and p, ``rel drop`` (mean(corrupted) / mean(clean)
    − 1 over those seeds) with its interval (:func:`r2mr.report.inference.relative_interval`); for labels other than
    ``reference``: ``rel drop − ref`` (this model's mean per-seed relative drop minus the reference's; > 0:
    the reference loses more) with a Welch interval, p, Holm over those rows and ``MDE`` (80% power)."""
    rows, drops = {}, {}
    for label in [x for x in clean if x in corrupted]:
        a, b = clean[label], corrupted[label]
        common = sorted(set(a.seeds) & set(b.seeds))
        pa, pb = {s: a.seeds[s] for s in common}, {s: b.seeds[s] for s in common}
        d = inference.seed_difference(pb, pa, paired=True, alpha=alpha)
        lo, hi = inference.relative_interval(pb, pa, paired=True, alpha=alpha)
        mc, mb = (float(np.mean(list(x.values()))) if x else math.nan for x in (pa, pb))
        drops[label] = _per_seed_relative_drop(a, b)
        rows[label] = {"seeds paired": len(common), "mean clean": mc, "mean corrupted": mb, "drop": d["diff"],
                       "drop lo": d["lo"], "drop hi": d["hi"], "p drop": d["p"],
                       "rel drop": mb / mc - 1 if mc else math.nan, "rel drop lo": lo, "rel drop hi": hi}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")
    if reference not in drops or len(table) < 2:  # no reference, or nothing to compare it with
        return table
    for label in table.index.drop(reference):
        d = inference.seed_difference(drops[label], drops[reference], paired=False, alpha=alpha)
        table.loc[label, ["rel drop − ref", "rel drop − ref lo", "rel drop − ref hi", "p vs ref"]] = (
            d["diff"], d["lo"], d["hi"], d["p"])
        table.loc[label, "MDE vs ref"] = inference.mde(d["se"], d["df"], alpha)
    others = table.index != reference
    table.loc[others, "p vs ref (Holm)"] = holm(table.loc[others, "p vs ref"].to_numpy(float))
    table.loc[others, "sig vs ref"] = [marker(p) for p in table.loc[others, "p vs ref (Holm)"]]
    return table


def archived_states(entry: Any) -> dict[str, Mapping[str, Any]]:
    """The Reviewer states (:func:`r2mr.report.quality.model_states`: before the first rewrite, best valid, after
    training) of an archived R2MR run (:class:`r2mr.runs.archive.Entry`); empty for a run without artifacts."""
    from ..runs.archive import decode_tree

    tree = entry.doc["arrays"]
    if "artifacts" not in tree:
        return {}
    best = decode_tree(tree["artifacts_best"], entry.arrays) if "artifacts_best" in tree else None
    return analysis.model_states(decode_tree(tree["artifacts"], entry.arrays), best)


def row_label(record: Mapping[str, Any]) -> str:
    """The robustness row of a run record: the model's printed name, R2MR's frozen control apart."""
    from ..runs.plan_specs import label

    frozen = record.get("config", {}).get("content") == "frozen"
    return label(record["model"]) + (FROZEN if frozen else "")


def drop_tables_from_archive(root: Path | None = None, metric: str = "recall@20", rule: str = "by_valid",
                             reference: str = "R2MR", exclude_seeds: Sequence[int] | None = None
                             ) -> dict[str, pd.DataFrame]:
    """``{variant: drop_table}`` for every corrupted variant in the archive: each variant run is matched with
    the runs of the same model and resolved config on its base set (the clean-selected configuration);
    ``exclude_seeds`` (default: the converged plan's tuning seeds) never enter."""
    from ..runs.plan_specs import TUNE_SEEDS
    from .recompute import archived_records, archived_sets, config_id

    drop = tuple(TUNE_SEEDS if exclude_seeds is None else exclude_seeds)
    sets = archived_sets(root, metric, rule, exclude_seeds=drop)
    by_config: dict[str, dict[str, tuple[str, Mapping[str, Any]]]] = {}
    for cid, recs in archived_records(root).items():
        r = recs[0]
        by_config.setdefault(config_id(r["model"], "", r["config"]), {})[r["dataset"]] = (cid, r)
    clean: dict[str, dict[str, RunSet]] = {}
    bad: dict[str, dict[str, RunSet]] = {}
    for per_ds in by_config.values():
        for ds, (cid, r) in per_ds.items():
            c = corrupt.parse(ds)
            if c is None or c.base not in per_ds or cid not in sets or per_ds[c.base][0] not in sets:
                continue
            clean.setdefault(ds, {})[row_label(r)] = sets[per_ds[c.base][0]]
            bad.setdefault(ds, {})[row_label(r)] = sets[cid]
    return {ds: drop_table(clean[ds], bad[ds], reference) for ds in sorted(bad)}


# ---- (b) the Reviewer's AUC ------------------------------------------------------------------------------------

def auc_table(by_features: Mapping[str, Mapping[int, Mapping[str, Mapping[str, Any]]]],
              masks: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """ROC-AUC per feature treatment, model state and corrupted modality (index), over seeds: ``AUC`` (mean),
    ``AUC std`` (ddof 1) and ``n seeds``. ``by_features``: ``{"trained" | "frozen": {seed: {state: artifact
    view}}}`` (views as :func:`r2mr.report.quality.model_states` makes them); ``masks``: :func:`corruption_masks`
    (modalities without corrupted items are skipped)."""
    rows = []
    for treatment, seeds in by_features.items():
        for seed, states in seeds.items():
            for state, view in states.items():
                scores = analysis.scores_of(view)
                for m, mask in masks.items():
                    if m in scores and len(mask) != len(scores[m]):
                        raise ValueError(f"{treatment}, seed {seed}: the masks have {len(mask)} items, the scores "
                                         f"{len(scores[m])}; give corruption_masks the data set's n_items")
                    if m in scores and 0 < int(np.sum(mask)) < len(mask):
                        rows.append({"feature tables": treatment, "model state": state, "modality": m,
                                     "seed": seed, "AUC": analysis.roc(scores[m], mask)[2]})
    if not rows:
        return pd.DataFrame()
    g = pd.DataFrame(rows).groupby(["feature tables", "model state", "modality"], sort=False)["AUC"]
    return pd.DataFrame({"AUC": g.mean(), "AUC std": g.std(ddof=1), "n seeds": g.size()})


# ---- (c) where the corrupted items end ----------------------------------------------------------------------

def area_counts(view: Mapping[str, Any], masks: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per corrupted modality and item group (index: ``modality``, ``group`` corrupted / clean): items, how many
    lie in each quality area (:data:`r2mr.report.quality.STATES`, the view's η, s ≥ η as the code) and how many
    had that modality rewritten (``rewritten``: accepted rewrites, from the view's masks). Two modalities are
    needed for the areas (with one more, the areas column is left out)."""
    scores = analysis.scores_of(view)
    areas = analysis.area_labels(scores, float(view["eta"])) if len(scores) == 2 else None
    rewritten = {m: np.asarray(v, bool) for m, v in (view.get("rewritten") or {}).items()}
    rows = {}
    for m, mask in masks.items():
        mask = np.asarray(mask, bool)
        for group, sel in (("corrupted", mask), ("clean", ~mask)):
            row: dict[str, float] = {"items": int(sel.sum())}
            if areas is not None:
                row.update({a: int(np.sum(areas[sel] == a)) for a in analysis.STATES})
            row["rewritten"] = int(rewritten[m][sel].sum()) if m in rewritten else 0
            rows[(m, group)] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["modality", "group"])


def area_counts_over_seeds(views: Mapping[int, Mapping[str, Any]], masks: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """:func:`area_counts` of each seed's view (``{seed: view}``), mean over seeds (``n seeds`` added)."""
    tables = [area_counts(v, masks) for v in views.values()]
    if not tables:
        return pd.DataFrame()
    out = pd.concat(tables).groupby(level=[0, 1], sort=False).mean()
    out["n seeds"] = len(tables)
    return out


def rewrite_totals(arts: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per seed (in order): :func:`r2mr.report.quality.rewrite_totals` of each run's final artifacts (rounds,
    candidates, accepted rewrites, rows rewritten)."""
    return pd.DataFrame([analysis.rewrite_totals(a) for a in arts])
