"""Seed-level inference: the trained model (one seed) is the unit of replication.

A table compares run sets (one configuration on one data set, several seeds; :class:`r2mr.report.significance.RunSet`):
R2MR against each baseline, each ablation against the full model. For each comparison "A vs B" (difference
A − B of the per-seed test metric) :func:`compare_seeds` reports:

* **Mean difference, its 95% confidence interval and a t-test.** Which t-test (``design="auto"``):

  - *Welch* (unequal variances, Welch–Satterthwaite degrees of freedom) when A and B are different models.
    Two models given the same seed number share no randomness that would pair their outcomes: their
    parameters are drawn in different shapes and orders, so the only common stream is the negative sampler's,
    and it is consumed differently from the first batch on. Pairing them would match runs by an arbitrary
    label: the paired statistic would change if the seeds were renumbered, and it would cost degrees of
    freedom for a correlation that the design does not create. Welch also allows unequal seed sets (tuning
    and reporting seeds differ; Baby and Sports have 3).
  - *Paired by seed* when A and B are the same model (an ablation or a switch of R2MR against the full model)
    and share at least two seeds: the same seed gives the same initial parameters and the same sampler stream
    up to the switched part (without the Rewriter the run is identical to the full model until the first
    rewrite round), so the runs are positively correlated by construction and the paired test removes that
    shared variance. Only the seeds present in both arms enter.

* **Holm** over the comparisons of one table (:func:`r2mr.report.significance.holm`), on the t-test's p-values.
* **Relative difference** (A − B) / B with two 95% intervals over seeds. Seeds, not users, are the
  replicates: the test users are one fixed set for every model and the question is where another training
  run of the method would land; resampling users too (a hierarchical bootstrap) would add test-set sampling
  noise that the claim ("on this benchmark") conditions on.

  - ``rel lo``/``rel hi`` (primary, :func:`relative_interval`): the t interval of log(m_A / m_B) by the delta
    method, mapped back. It keeps the t-test's small-sample calibration: 95–96% coverage with 3 and 5 seeds
    in ``tests/test_inference.py``'s simulation.
  - ``rel boot lo``/``rel boot hi`` (:func:`bootstrap_relative`): the percentile bootstrap over seeds (pairs of
    seeds in the paired design), ``n_boot`` resamples from a fixed generator seed, so it is deterministic.
    Shown because it assumes no distribution, but with 3–5 seeds it has few distinct resamples and covers
    less than its nominal 95% (measured: about 79% with 3 seeds, 88% with 5): read it as too narrow.

* **Minimum detectable effect** (:func:`mde`): the true difference the t-test would detect with 80% power
  at the observed seed spread (its standard error and degrees of freedom), unadjusted (α = 0.05) and at
  Holm's first step (α / m for the table's m tests), absolute and relative to mean B.
* **Per-user Wilcoxon signed-rank** (secondary): each user's metric averaged over the seeds of its arm,
  users as replicates. It is *conditional on the trained models*: it ignores training variance, so it tests
  "these particular runs differ on these users", not "the methods differ"; two runs of the same method
  (the seed-noise replicate) routinely pass it.

Everything here is numpy, pandas and ``scipy.stats``; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .significance import RunSet, holm, marker, wilcoxon_users

ALPHA, POWER, N_BOOT = 0.05, 0.8, 4000
MDE_COLUMNS = ("design", "n A", "n B", "diff", "rel diff", "MDE", "MDE rel", "MDE (Holm first step)",
               "MDE rel (Holm first step)")  # :func:`mde_table`
WILCOXON = "p per-user Wilcoxon (conditional on the trained models)"
DESIGNS = ("auto", "paired", "welch")


# ---- the t-test and its interval ------------------------------------------------------------------------------

def seed_difference(a: Mapping[int, float], b: Mapping[int, float], paired: bool,
                    alpha: float = ALPHA) -> dict[str, float]:
    """Mean difference A − B over seeds: ``diff``, its standard error ``se``, degrees of freedom ``df``,
    ``t``, two-sided ``p`` and the (1 − alpha) interval ``lo``/``hi``. Paired: over the common seeds, on
    d_s = a_s − b_s (df = n − 1); Welch: SE = sqrt(s_A²/n_A + s_B²/n_B), Welch–Satterthwaite df. Too few
    seeds (paired < 2 common; Welch < 2 in an arm): NaN. No spread at all: p = 1 (equal) or 0 (a shift)."""
    if paired:
        common = sorted(set(a) & set(b))
        d = np.array([a[s] - b[s] for s in common], float)
        if len(d) < 2:
            return _nan_difference(float(d.mean()) if len(d) else math.nan)
        diff, se, df = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), float(len(d) - 1)
    else:
        x, y = _values(a), _values(b)
        if len(x) < 2 or len(y) < 2:
            return _nan_difference(float(x.mean() - y.mean()) if len(x) and len(y) else math.nan)
        va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
        diff, se = float(x.mean() - y.mean()), float(math.sqrt(va + vb))
        df = _welch_df(va, vb, len(x), len(y))
    if se <= 1e-12 * max(1.0, abs(diff)):  # no spread: identical runs, or a constant shift
        return {"diff": diff, "se": 0.0, "df": df, "t": math.nan, "p": 1.0 if abs(diff) <= 1e-12 else 0.0,
                "lo": diff, "hi": diff}
    t = diff / se
    q = float(stats.t.ppf(1 - alpha / 2, df))
    return {"diff": diff, "se": se, "df": df, "t": t, "p": float(2 * stats.t.sf(abs(t), df)),
            "lo": diff - q * se, "hi": diff + q * se}


def _values(seeds: Mapping[int, float]) -> np.ndarray:
    """The per-seed values in seed order (results never depend on the order runs were listed in)."""
    return np.array([seeds[s] for s in sorted(seeds)], float)


def _welch_df(va: float, vb: float, na: int, nb: int) -> float:
    """Welch–Satterthwaite degrees of freedom of two squared standard errors (no spread: na + nb − 2)."""
    if va + vb <= 0:
        return float(na + nb - 2)
    return float((va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)))


def _nan_difference(diff: float) -> dict[str, float]:
    return {"diff": diff, "se": math.nan, "df": math.nan, "t": math.nan, "p": math.nan, "lo": math.nan,
            "hi": math.nan}


def mde(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable effect of a two-sided t-test: the true difference δ > 0 with
    P(|T| > t_{1−α/2, df}) = ``power`` when T follows the noncentral t with df and noncentrality δ / se
    (both tails counted). Close to (t_{1−α/2, df} + t_{power, df}) · se, slightly above it for few df
    (:func:`mde_approx`). Above 1000 df the normal distribution stands in for the t (scipy's noncentral t
    loses precision there). NaN without a standard error; 0 when se is 0."""
    if not (np.isfinite(se) and np.isfinite(df)) or df <= 0:
        return math.nan
    if se == 0:
        return 0.0
    big = df > 1000
    crit = stats.norm.ppf(1 - alpha / 2) if big else stats.t.ppf(1 - alpha / 2, df)

    def gap(ncp: float) -> float:
        if big:
            return float(stats.norm.sf(crit - ncp) + stats.norm.cdf(-crit - ncp) - power)
        far = float(np.nan_to_num(stats.nct.cdf(-crit, df, ncp), nan=0.0))  # < 1e-12 where scipy gives NaN
        return float(stats.nct.sf(crit, df, ncp)) + far - power

    hi = 2 * (crit + stats.norm.ppf(power)) + 5
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-10)) * se


def mde_approx(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The usual closed form (t_{1−α/2, df} + t_{power, df}) · se (ignores the far tail)."""
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


# ---- the relative difference ----------------------------------------------------------------------------------

def gap_to_published(mean: float, std: float, n: int, published: float, level: float = 0.95
                     ) -> tuple[float, float, float]:
    """(relative gap, low, high) of our mean over ``n`` seeds against one published number: (mean − published) /
    published with the t interval of our mean (ddof-1 ``std``, n − 1 degrees of freedom) divided by it. The
    published number is taken as exact (one reported run, no spread given), so the interval covers only our
    seeds' spread; NaN bounds for fewer than 2 seeds."""
    if not (np.isfinite(mean) and np.isfinite(published)) or published == 0:
        return math.nan, math.nan, math.nan
    gap = (mean - published) / published
    if n < 2 or not np.isfinite(std):
        return gap, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return gap, (mean - half - published) / published, (mean + half - published) / published


def relative_interval(a: Mapping[int, float], b: Mapping[int, float], paired: bool,
                      alpha: float = ALPHA) -> tuple[float, float]:
    """(1 − alpha) interval of mean(A) / mean(B) − 1 from the t distribution on the log scale (delta method):
    log(m_A / m_B) ± t · SE, with SE² = s_A² / (n_A m_A²) + s_B² / (n_B m_B²) and Welch–Satterthwaite df
    (paired: SE² = var_s(a_s / m_A − b_s / m_B) / n over the common seeds, df = n − 1), mapped back with exp.
    NaN where an arm has fewer than two seeds or a mean is not positive."""
    if paired:
        common = sorted(set(a) & set(b))
        x, y = np.array([a[s] for s in common], float), np.array([b[s] for s in common], float)
    else:
        x, y = _values(a), _values(b)
    if len(x) < 2 or len(y) < 2 or x.mean() <= 0 or y.mean() <= 0:
        return math.nan, math.nan
    ma, mb = x.mean(), y.mean()
    if paired:
        se, df = float((x / ma - y / mb).std(ddof=1) / math.sqrt(len(x))), float(len(x) - 1)
    else:
        va, vb = x.var(ddof=1) / (len(x) * ma**2), y.var(ddof=1) / (len(y) * mb**2)
        se = float(math.sqrt(va + vb))
        df = _welch_df(va, vb, len(x), len(y))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    centre = math.log(ma / mb)
    return math.expm1(centre - half), math.expm1(centre + half)


def bootstrap_relative(a: Mapping[int, float], b: Mapping[int, float], paired: bool, n_boot: int = N_BOOT,
                       seed: int = 0, alpha: float = ALPHA) -> tuple[float, float]:
    """Percentile (1 − alpha) interval of mean(A) / mean(B) − 1 over ``n_boot`` resamples of the seeds
    (paired: resampled as pairs over the common seeds; else each arm on its own), generator ``seed``.
    NaN where an arm has fewer than two seeds or a resampled mean of B is 0."""
    rng = np.random.default_rng(seed)
    if paired:
        common = sorted(set(a) & set(b))
        x, y = np.array([a[s] for s in common], float), np.array([b[s] for s in common], float)
        if len(common) < 2:
            return math.nan, math.nan
        idx = rng.integers(0, len(common), size=(n_boot, len(common)))  # (n_boot, n)
        ma, mb = x[idx].mean(1), y[idx].mean(1)
    else:
        x, y = _values(a), _values(b)
        if len(x) < 2 or len(y) < 2:
            return math.nan, math.nan
        ma = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(1)
        mb = y[rng.integers(0, len(y), size=(n_boot, len(y)))].mean(1)
    if np.any(mb == 0):
        return math.nan, math.nan
    lo, hi = np.quantile(ma / mb - 1, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


# ---- one comparison and a table ------------------------------------------------------------------------------

def choose_design(a: RunSet, b: RunSet, design: str = "auto") -> str:
    """``paired`` or ``welch`` (see the module docstring): ``auto`` pairs two arms of the same model that
    share at least two seeds."""
    if design not in DESIGNS:
        raise ValueError(f"design {design!r}: use one of {', '.join(DESIGNS)}")
    if design != "auto":
        return design
    same_model = bool(a.model) and a.model == b.model
    return "paired" if same_model and len(set(a.seeds) & set(b.seeds)) >= 2 else "welch"


def compare_seeds(a: RunSet, b: RunSet, design: str = "auto", n_boot: int = N_BOOT, boot_seed: int = 0,
                  alpha: float = ALPHA, power: float = POWER, zero_method: str = "pratt") -> dict[str, float | str]:
    """One row of :func:`seed_table` (before Holm): the design, seeds, means, difference with interval,
    t-test, relative difference with its t and bootstrap intervals, unadjusted MDE and the per-user Wilcoxon.
    Paired: every seed-level number (n, means, differences) is over the common seeds only, so that
    ``diff = mean A − mean B``; the Wilcoxon keeps each arm's per-user means over all its seeds."""
    kind = choose_design(a, b, design)
    paired = kind == "paired"
    sa, sb = a.seeds, b.seeds
    if paired:
        common = set(sa) & set(sb)
        sa, sb = ({s: v for s, v in x.items() if s in common} for x in (sa, sb))
    d = seed_difference(sa, sb, paired, alpha)
    ma, mb = (float(_values(s).mean()) if s else math.nan for s in (sa, sb))
    rel = (ma - mb) / mb if mb else math.nan
    rlo, rhi = relative_interval(sa, sb, paired, alpha)
    blo, bhi = bootstrap_relative(sa, sb, paired, n_boot, boot_seed, alpha)
    p_w, n_users = (wilcoxon_users(a.users, b.users, zero_method) if len(a.users) and len(b.users)
                    else (math.nan, 0))
    m = mde(d["se"], d["df"], alpha, power)
    return {"design": "paired by seed" if paired else "Welch", "n A": len(sa), "n B": len(sb),
            "mean A": ma, "mean B": mb, "diff": d["diff"], "diff lo": d["lo"], "diff hi": d["hi"],
            "t": d["t"], "df": d["df"], "p t-test": d["p"], "rel diff": rel, "rel lo": rlo, "rel hi": rhi,
            "rel boot lo": blo, "rel boot hi": bhi,
            "MDE": m, "MDE rel": m / mb if mb else math.nan, "se": d["se"], WILCOXON: p_w, "n users": n_users}


def seed_table(sets: Mapping[str, RunSet], pairs: Sequence[tuple[str, str]], design: str = "auto",
               n_boot: int = N_BOOT, boot_seed: int = 0, alpha: float = ALPHA, power: float = POWER,
               zero_method: str = "pratt") -> pd.DataFrame:
    """One row per pair (A, B) of labels in ``sets`` (index A, B): :func:`compare_seeds`, then Holm over the
    rows for the t-test (primary: ``p t-test (Holm)``, ``sig``) and the Wilcoxon (secondary), and the MDE at
    Holm's first step (α / m, m = the rows with a finite t-test p). Each comparison's bootstrap draws from
    its own generator (``boot_seed`` + row number), so a row does not depend on the rows before it."""
    rows = [{"A": x, "B": y, **compare_seeds(sets[x], sets[y], design, n_boot, boot_seed + i, alpha, power,
                                             zero_method)} for i, (x, y) in enumerate(pairs)]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["p t-test (Holm)"] = holm(df["p t-test"].to_numpy())
    df["sig"] = [marker(p) for p in df["p t-test (Holm)"]]
    df[f"{WILCOXON} (Holm)"] = holm(df[WILCOXON].to_numpy())
    m = int(np.isfinite(df["p t-test"].to_numpy(float)).sum())
    df["MDE (Holm first step)"] = [mde(se, dof, alpha / max(m, 1), power) for se, dof in zip(df["se"], df["df"])]
    df["MDE rel (Holm first step)"] = df["MDE (Holm first step)"] / df["mean B"].where(df["mean B"] != 0)
    return df.set_index(["A", "B"])


def mde_table(table: pd.DataFrame) -> pd.DataFrame:
    """The minimum-detectable-effect view of a :func:`seed_table`: per comparison the seeds, the observed
    difference and the MDE at 80% power, absolute and relative, unadjusted and at Holm's first step."""
    return table[[c for c in MDE_COLUMNS if c in table.columns]]
