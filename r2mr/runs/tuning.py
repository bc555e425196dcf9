"""Equal tuning budget: the declared grids of ``r2mr/configs/tuning.yaml`` and selection on validation only.

:func:`load` reads and checks the file (every registered model has a grid; every grid, on every data set,
has exactly ``points`` configurations; every key and value is accepted by the model's config);
:func:`points` expands one model's grid into override dicts; :func:`select` picks the point with the best
mean validation metric over seeds and returns the whole grid as a table (test columns shown, never used).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.config import load_yaml
from ..core.errors import ConfigError
from ..core.names import MODEL_NAMES

DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "tuning.yaml"  # package data


@dataclass
class Grid:
    """One model's grid: ``grid`` (key -> values, Cartesian product), ``fixed`` overrides, and per data set
    replacements ``{dataset: {"grid": ..., "fixed": ...}}``."""

    grid: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class TuningPlan:
    points: int  # configurations per model and data set
    seeds: int  # seeds per grid point
    metric: str  # validation metric used for selection
    models: dict[str, Grid]
    path: Path | None = None


def load(path: str | Path = DEFAULT) -> TuningPlan:
    """Read and validate the tuning file; every problem is one :class:`ConfigError` line."""
    from ..models import MODELS

    path = Path(path)
    raw = load_yaml(path)
    for key in ("points", "seeds", "models"):
        if key not in raw:
            raise ConfigError(f"{path}: missing top-level key '{key}'; fix: add it (see the comments in the file)")
    models = raw["models"] or {}
    unknown = sorted(set(models) - set(MODELS))
    missing = [m for m in MODEL_NAMES if m not in models]  # a model you registered may go without a grid
    if unknown or missing:
        raise ConfigError(f"{path}: models {', '.join(unknown) or '-'} are not registered "
                          f"and {', '.join(missing) or '-'} have no grid; "
                          f"fix: declare every built-in model ({', '.join(MODEL_NAMES)}) and only registered ones")
    plan = TuningPlan(int(raw["points"]), int(raw["seeds"]), str(raw.get("metric", "recall@20")), {}, path)
    if plan.points < 1 or plan.seeds < 1:
        raise ConfigError(f"{path}: points and seeds must be >= 1; fix: set them to positive integers")
    for name, spec in models.items():
        spec = spec or {}
        extra = sorted(set(spec) - {"grid", "fixed", "datasets"})
        if extra or not isinstance(spec.get("grid"), dict):
            raise ConfigError(f"{path}: model '{name}' needs a 'grid' mapping (and optional 'fixed', 'datasets'), "
                              f"found {', '.join(map(str, spec)) or 'nothing'}; fix: write grid: {{key: [values]}}")
        plan.models[name] = Grid(dict(spec["grid"]), dict(spec.get("fixed") or {}), dict(spec.get("datasets") or {}))
        for dataset in [None, *plan.models[name].datasets]:
            _check_points(plan, name, dataset)
    return plan


def _check_points(plan: TuningPlan, model: str, dataset: str | None) -> None:
    from .experiment import make_configs

    where = f"{plan.path}: model '{model}'" + (f" on '{dataset}'" if dataset else "")
    pts = points(plan, model, dataset)
    if len(pts) != plan.points:
        raise ConfigError(f"{where} has {len(pts)} grid points, the budget is {plan.points}; "
                          f"fix: give every model the same number of points")
    if len({_key(p) for p in pts}) != len(pts):
        raise ConfigError(f"{where} repeats a grid point; fix: list distinct values")
    for p in pts:
        try:
            make_configs(model, p, dataset=dataset)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def points(plan: TuningPlan, model: str, dataset: str | None = None) -> list[dict[str, Any]]:
    """The grid of ``model`` (on ``dataset``) as override dicts, in grid order (first key varies slowest)."""
    g = plan.models[model]
    over = g.datasets.get(dataset or "", {}) or {}
    grid, fixed = over.get("grid", g.grid), {**g.fixed, **(over.get("fixed") or {})}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{plan.path}: model '{model}' grid key '{key}' must be a non-empty list; "
                              f"fix: write {key}: [value, ...]")
    keys = list(grid)
    return [{**fixed, **dict(zip(keys, combo))} for combo in itertools.product(*(grid[k] for k in keys))]


def _key(overrides: Mapping[str, Any]) -> str:
    return json.dumps(dict(sorted(overrides.items())), default=str)


def select(results: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], metric: str = "recall@20"
           ) -> tuple[dict[str, Any], pd.DataFrame]:
    """(selected overrides, grid table) from ``[(overrides, result dict), ...]`` (one per grid point and seed).

    A point's score is the mean over its seeds of ``result["valid"][metric]`` (the best-valid epoch's value);
    the highest mean wins, ties go to the point listed first. The table has one row per point (in order of
    first appearance): the overrides, n seeds, valid and test mean and sample std, ``selected`` (by valid),
    ``best test`` (the point a test-based grid search would pick; for the selection-bias table only) and, on the
    selected row, ``selected at grid edge`` (:func:`grid_edges`)."""
    if not results:
        raise ConfigError("tuning: no grid results to select from; fix: run the grid first")
    mixed = {(r.get("model"), r.get("dataset")) for _, r in results}
    if len(mixed) > 1:
        raise ConfigError(f"tuning: the grid results mix {sorted(map(str, mixed))}; fix: select per model and "
                          f"data set")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    overrides: dict[str, dict[str, Any]] = {}
    for ov, res in results:
        k = _key(ov)
        overrides.setdefault(k, dict(ov))
        groups.setdefault(k, []).append(res)
    rows = []
    for k, runs in groups.items():
        valid = np.array([r["valid"][metric] for r in runs], float)
        test = np.array([r["test"][metric] for r in runs], float)
        rows.append({**overrides[k], "n seeds": len(runs), f"valid {metric}": valid.mean(),
                     f"valid {metric} std": valid.std(ddof=1) if len(runs) > 1 else np.nan,
                     f"test {metric}": test.mean(),
                     f"test {metric} std": test.std(ddof=1) if len(runs) > 1 else np.nan})
    table = pd.DataFrame(rows)
    best = int(np.argmax(table[f"valid {metric}"].to_numpy()))  # first of equal maxima
    table["selected"] = np.arange(len(table)) == best
    table["best test"] = np.arange(len(table)) == int(np.argmax(table[f"test {metric}"].to_numpy()))
    edges = grid_edges(list(overrides.values()), overrides[list(groups)[best]])
    table["selected at grid edge"] = np.where(table["selected"], edges, "")
    return overrides[list(groups)[best]], table


def grid_edges(points: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any]) -> str:
    """The numeric grid keys (three or more distinct values) whose value in ``chosen`` is the grid's smallest
    or largest, e.g. ``"lr=0.00025 (min of 3)"``, comma-separated; "" where every value is inside its range
    (a selection on an edge says the optimum may lie outside the declared grid)."""
    out = []
    for key, value in chosen.items():
        values = {p[key] for p in points if key in p}
        if len(values) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        if value in (min(values), max(values)):
            out.append(f"{key}={value:g} ({'min' if value == min(values) else 'max'} of {len(values)})")
    return ", ".join(out)
