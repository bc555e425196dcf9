"""Notebook 03's seed-level tests, selected epochs and learning curves, from its finished main runs.

The seed (a training run) is the unit: per data set and metric, :func:`seed_tests` compares R2MR with every
baseline and each content control with R2MR (:func:`r2mr.report.recompute.table_from_runs`: mean difference
with its 95% interval, Welch or paired t-test, Holm within the table, relative difference with intervals,
minimum detectable effect, and the per-user Wilcoxon as a secondary column). :func:`write` saves each table as
``seed_tests_<data set>_<metric>.csv``, which anyone can recompute from the evidence archive alone
(:func:`r2mr.report.recompute.check`). :func:`records_by_dataset` feeds :mod:`r2mr.report.curves` (the
selected-epoch table) and :mod:`r2mr.report.curve_plots` (the learning curves).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.names import PER_USER_METRICS
from ..runs.notebook_runs import Run
from . import recompute

MIN_SEEDS = 2  # a row enters the tests with at least this many finished seeds (a t-test needs two)


def _finished(runs: Sequence[Run], dataset: str) -> dict[str, list[Run]]:
    """{row label: its finished runs on ``dataset``}, rows with at least :data:`MIN_SEEDS` seeds, in plan order."""
    out: dict[str, list[Run]] = {}
    for r in runs:
        if r.dataset == dataset and r.ok and r.folder is not None:
            out.setdefault(r.spec.label, []).append(r)
    return {lab: g for lab, g in out.items() if len(g) >= MIN_SEEDS}


def pairs_of(groups: dict[str, list[Run]]) -> list[tuple[str, str]]:
    """(A, B) pairs: R2MR against each baseline, then each R2MR control (role other than model) against R2MR.
    Where R2MR itself has no runs (Baby and Sports without item features), each control against each baseline."""
    r2mr = [lab for lab, g in groups.items() if g[0].spec.model == "r2mr" and g[0].spec.role == "model"]
    controls = [lab for lab, g in groups.items() if g[0].spec.model == "r2mr" and lab not in r2mr]
    baselines = [lab for lab, g in groups.items() if g[0].spec.model != "r2mr" and g[0].spec.role == "model"]
    if not r2mr:
        return [(c, b) for c in controls for b in baselines]
    return [(r2mr[0], b) for b in baselines] + [(c, r2mr[0]) for c in controls]


def against_first(groups: dict[str, list[Run]]) -> list[tuple[str, str]]:
    """(A, B) pairs for an ablation table: every row against the first row with ≥ 2 seeds (the full model
    where it has them: the ablation specs list it first)."""
    labels = list(groups)
    return [(lab, labels[0]) for lab in labels[1:]]


def _resolved(run: Run) -> dict[str, Any]:
    """A finished run's resolved configuration without its seed (what makes two rows the same model)."""
    return {k: v for k, v in (run.result or {}).get("config", {}).items() if k != "seed"}


def against_config(config: Mapping[str, Any]) -> Callable[[dict[str, list[Run]]], list[tuple[str, str]]]:
    """Pair rule for a sensitivity family (η, K, codebook size): every row against the row whose resolved
    configuration (seed aside) is ``config`` (the full model's: the family's default setting); none where no
    row has it."""
    wanted = {k: v for k, v in config.items() if k != "seed"}

    def rule(groups: dict[str, list[Run]]) -> list[tuple[str, str]]:
        base = [lab for lab, g in groups.items() if _resolved(g[0]) == wanted]
        return [(lab, base[0]) for lab in groups if lab != base[0]] if base else []

    return rule


def reference_configs(runs: Sequence[Run], label: str) -> dict[str, dict[str, Any]]:
    """{data set: resolved configuration of the first finished run labelled ``label``} (the full model's, which
    differs between data sets: each selects its own point on validation)."""
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r.spec.label == label and r.ok and r.dataset not in out:
            out[r.dataset] = dict((r.result or {}).get("config", {}))
    return out


def family_tests(families: dict[str, Sequence[Run]], configs: Mapping[str, Mapping[str, Any]],
                 metrics: Sequence[str] = PER_USER_METRICS) -> dict[tuple[str, str], pd.DataFrame]:
    """{(``<family>_<data set>``, metric): seed table}: each family's rows on each data set against that data
    set's default setting (:func:`against_config` of the full model's resolved configuration there,
    ``configs[data set]``: :func:`reference_configs`), paired by seed, Holm within the family, with the minimum
    detectable effects. A data set without an entry in ``configs`` gets no table."""
    out = {}
    for family, runs in families.items():
        for dataset, config in configs.items():
            own = [r for r in runs if r.dataset == dataset]
            for (ds, metric), table in seed_tests(own, metrics, against_config(config)).items():
                out[(f"{family}_{ds}", metric)] = table
    return out


def seed_tests(runs: Sequence[Run], metrics: Sequence[str] = PER_USER_METRICS,
               pair_rule: Callable[[dict[str, list[Run]]], list[tuple[str, str]]] = pairs_of
               ) -> dict[tuple[str, str], pd.DataFrame]:
    """{(data set, metric): seed table} per data set where ``pair_rule`` (:func:`pairs_of`: the main table;
    :func:`against_first`: an ablation table) pairs rows that have ≥ 2 finished seeds."""
    out = {}
    for dataset in dict.fromkeys(r.dataset for r in runs):
        groups = _finished(runs, dataset)
        pairs = pair_rule(groups) if groups else []
        if not pairs:
            continue
        used = {lab for pair in pairs for lab in pair}
        arms = {lab: [(r.result, r.folder) for r in groups[lab]] for lab in groups if lab in used}
        for metric in metrics:
            out[(dataset, metric)] = recompute.table_from_runs(arms, pairs, metric)
    return out


def file_name(dataset: str, metric: str, prefix: str = "seed_tests") -> str:
    """``seed_tests_tiktok_recall20``: the table's file stem (``prefix`` first)."""
    return f"{prefix}_{dataset}_{metric.replace('@', '')}"


def write(tables: dict[tuple[str, str], pd.DataFrame], folder: Path, prefix: str = "seed_tests") -> list[Path]:
    """Write each table as ``<folder>/<file_name>.csv`` (full precision, atomically); return the paths."""
    return [recompute.write_table(t, Path(folder) / f"{file_name(d, m, prefix)}.csv") for (d, m), t in tables.items()]


def readable(table: pd.DataFrame, columns: Sequence[str] = recompute.PRINTED) -> pd.DataFrame:
    """``columns`` of ``table`` (default: what a reader needs, :data:`r2mr.report.recompute.PRINTED`; the
    minimum detectable effects: :data:`r2mr.report.inference.MDE_COLUMNS`), four significant digits."""
    cols = [c for c in columns if c in table.columns]
    return table[cols].map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)


def records_by_dataset(runs: Sequence[Run]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{data set: {row label: [run record, one per finished seed]}}: the input of :mod:`r2mr.report.curves`."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in runs:
        if r.ok:
            out.setdefault(r.dataset, {}).setdefault(r.spec.label, []).append(r.result)
    return out


def check_line(path: Path, root: Path | None = None) -> str:
    """One line: ``path`` recomputed from the evidence archive (:func:`r2mr.report.recompute.check`) and its
    largest relative deviation, or why it cannot be (its runs are not all archived, e.g. a tutorial run)."""
    from ..core.errors import ConfigError

    try:
        return f"{Path(path).name}: recomputed from the evidence archive, largest relative deviation " \
               f"{recompute.check(path, root):.1e}"
    except ConfigError as exc:
        return f"{Path(path).name}: not recomputable from the archive here ({str(exc).split(': ', 1)[-1]})"
