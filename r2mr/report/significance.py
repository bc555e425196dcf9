"""Paired significance tests between two sets of runs, Holm-corrected within a table, and the cell format
of every reported number (mean ± sample std and n).

One *run set* is one configuration (a model, an ablation) on one data set, trained with several seeds; each
run stores its per-user test metrics at the selected epoch in ``per_user.npz`` (see
:func:`r2mr.evaluation.evaluator.save_per_user`). For a comparison "A vs B" (difference A − B):

* **Wilcoxon signed-rank over users** (``scipy.stats.wilcoxon``): each user's metric is first averaged over
  the seeds of its run set; the test pairs the users present in both. Users whose two values are equal are
  common (on TikTok every user has one held-out item, so Recall@20 is 0 or 1 and many users miss in both);
  ``zero_method="pratt"`` (default here) keeps them in the ranking and then drops their ranks, which is more
  conservative than discarding them first ("wilcox") when zeros are many. If every difference is zero the
  p-value is 1.
* **Paired t-test over seeds** (``scipy.stats.ttest_rel``) on the per-seed mean metric, runs matched by seed;
  it needs at least two common seeds (else NaN). Identical per-seed values give p = 1.
* **Holm** (step-down) adjustment of each column's p-values over the comparisons of one table; the markers
  are ``**`` (adjusted p < 0.01), ``*`` (< 0.05), ``n.s.`` and ``–`` where no test was possible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..core.errors import ConfigError, DataError
from ..core.formatting import fmt_mean_std

ALPHAS = ((0.01, "**"), (0.05, "*"))


# ---- cells ------------------------------------------------------------------------------------------------------

def mean_std_n(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1 (NaN for one value), n) of the finite values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def format_cell(values: Sequence[float], digits: int = 4) -> str:
    """``"0.0712 ± 0.0011 (n=3)"``; one value: ``"0.0712 (n=1)"`` (no ±); none: ``"–"``."""
    mean, std, n = mean_std_n(values)
    return "–" if n == 0 else f"{fmt_mean_std(mean, std, digits)} (n={n})"  # one value: NaN std, no ±


# ---- tests ------------------------------------------------------------------------------------------------------

def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given); NaN entries stay NaN and do not count.

    With the m finite p-values sorted ascending p_(1) ≤ … ≤ p_(m): adj_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m, running = len(order), 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


def marker(p: float) -> str:
    """``**`` below 0.01, ``*`` below 0.05, ``n.s.`` otherwise, ``–`` for NaN."""
    if not np.isfinite(p):
        return "–"
    return next((mark for alpha, mark in ALPHAS if p < alpha), "n.s.")


def wilcoxon_users(a: pd.Series, b: pd.Series, zero_method: str = "pratt") -> tuple[float, int]:
    """(two-sided p, n users) of the signed-rank test on the users (index) present in both Series."""
    common = a.index.intersection(b.index)
    d = a.loc[common].to_numpy(float) - b.loc[common].to_numpy(float)
    if len(d) == 0:
        return math.nan, 0
    if not np.any(d):
        return 1.0, len(d)
    return float(stats.wilcoxon(d, zero_method=zero_method).pvalue), len(d)


def ttest_seeds(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[float, int]:
    """(two-sided p, n seeds) of the paired t-test on the seeds present in both mappings (seed -> metric)."""
    seeds = sorted(set(a) & set(b))
    x, y = np.array([a[s] for s in seeds], float), np.array([b[s] for s in seeds], float)
    if len(seeds) < 2:
        return math.nan, len(seeds)
    d = x - y
    if np.ptp(d) <= 1e-12:  # no spread (up to rounding): identical runs (p = 1) or a constant shift (p -> 0)
        return (1.0 if abs(d.mean()) <= 1e-12 else 0.0), len(seeds)
    return float(stats.ttest_rel(x, y).pvalue), len(seeds)


# ---- run sets from stored results -------------------------------------------------------------------------------

@dataclass
class RunSet:
    """One configuration's runs: the per-seed test metric and the per-user metric averaged over seeds."""

    seeds: dict[int, float]  # seed -> test metric at the selected epoch
    users: pd.Series  # user id -> per-user metric, mean over the seeds that evaluated the user
    model: str = ""  # the registered model (seed-level inference pairs two arms of one model by seed)


def run_set(runs: Sequence[tuple[Mapping[str, Any], str | Path]], metric: str = "recall@20",
            rule: str = "by_valid") -> RunSet:
    """From ``[(result dict, run folder), ...]`` (one per seed): ``rule`` "by_valid" reads ``result["test"]``,
    "by_test" ``result["test_selected_by_test"]``; per-user values come from the folder's ``per_user.npz``."""
    from ..evaluation.evaluator import load_per_user

    field = {"by_valid": "test", "by_test": "test_selected_by_test"}[rule]
    seeds, per_user, models = {}, [], set()
    for res, folder in runs:
        models.add(str(res.get("model", "")))
        seeds[int(res["seed"])] = float(res[field][metric])
        if "per_user" not in res:
            raise DataError(f"{folder}: run of {res.get('model')} (seed {res.get('seed')}) has no per-user metrics; "
                            f"fix: rerun it with this version (force a recompute of that run)")
        pu = load_per_user(Path(folder) / res["per_user"])
        if rule not in pu or metric not in pu[rule].get("test", {}):
            raise DataError(f"{Path(folder) / res['per_user']}: no per-user test {metric} for rule {rule}; "
                            f"fix: rerun that run")
        t = pu[rule]["test"]
        per_user.append(pd.Series(t[metric], index=t["users"]))
    users = pd.concat(per_user).groupby(level=0).mean() if per_user else pd.Series(dtype=float)
    return RunSet(seeds, users, models.pop() if len(models) == 1 else "")


def compare(a: RunSet, b: RunSet, zero_method: str = "pratt") -> dict[str, float]:
    """One row: means, absolute and relative difference (A − B, over B), both tests' p and their n."""
    ma, mb = mean_std_n(list(a.seeds.values()))[0], mean_std_n(list(b.seeds.values()))[0]
    p_w, n_users = wilcoxon_users(a.users, b.users, zero_method)
    p_t, n_seeds = ttest_seeds(a.seeds, b.seeds)
    return {"mean A": ma, "mean B": mb, "diff": ma - mb, "rel diff": (ma - mb) / mb if mb else math.nan,
            "n users": n_users, "n seeds": n_seeds, "p wilcoxon": p_w, "p t-test": p_t}


def significance_table(sets: Mapping[str, RunSet], pairs: Sequence[tuple[str, str]],
                       zero_method: str = "pratt") -> pd.DataFrame:
    """One row per pair (A, B) of labels in ``sets``, with Holm-adjusted p-values over the rows and markers."""
    rows = [{"A": a, "B": b, **compare(sets[a], sets[b], zero_method)} for a, b in pairs]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for test in ("wilcoxon", "t-test"):
        df[f"p {test} (Holm)"] = holm(df[f"p {test}"].to_numpy())
        df[f"sig {test}"] = [marker(p) for p in df[f"p {test} (Holm)"]]
    return df.set_index(["A", "B"])


def table_from_results(groups: Mapping[str, Sequence[tuple[Mapping[str, Any], str | Path]]],
                       pairs: Sequence[tuple[str, str]], metric: str = "recall@20", rule: str = "by_valid",
                       zero_method: str = "pratt") -> pd.DataFrame:
    """:func:`significance_table` from stored runs: ``groups`` maps a label to its ``[(result, run folder)]``."""
    needed = dict.fromkeys(x for pair in pairs for x in pair)
    missing = [x for x in needed if x not in groups]
    if missing:
        raise ConfigError(f"significance table: no runs for {', '.join(missing)} (have {', '.join(groups)}); "
                          f"fix: pass their results or drop those pairs")
    sets = {label: run_set(groups[label], metric, rule) for label in needed}
    return significance_table(sets, pairs, zero_method)


def against(reference: str, others: Sequence[str], reference_first: bool = True) -> list[tuple[str, str]]:
    """Pairs for a table: (reference, other) for "R2MR vs each baseline", (other, reference) for "each
    ablation vs the full model" (``reference_first=False``)."""
    return [(reference, o) if reference_first else (o, reference) for o in others if o != reference]
