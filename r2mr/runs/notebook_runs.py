"""Store access for the notebooks: train or read back one planned run (:func:`run_one`), a grid of them
(:func:`run_grid`), what a finished run saved (:func:`artifacts`), and summaries over seeds (:func:`summarise`).

Every run goes through :func:`r2mr.runs.experiment.train`, so a finished run is read back from the store and a
killed one resumes. A cell that needs data that is absent is a :class:`Run` with status ``"not run: …"``,
never a number. ``force_since`` (a UNIX time) recomputes runs that finished before it (``run_all.sh --restart``)
but reuses those made since, so two notebooks share a rerun.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, DataError
from ..core.names import REPORTED_METRICS
from ..core.paths import NO_TRAIN_ENV, strip_roots
from ..data.discovery import find_dataset_root, missing_data_reason
from .plan import PlannedRun
from .plan_specs import Spec
from .store import RecordError

log = logging.getLogger(__name__)

METRICS = REPORTED_METRICS
NOT_ARCHIVED = "not run: not in the evidence archive yet (train it: run-all --train-only)"  # run-all --no-train
SELECTIONS = {"valid": "best-valid epoch", "test": "test-selected (official rule)"}
PENDING = "not run: tuning grid incomplete"  # a stage-2 row whose grid has not selected its point yet


@dataclass
class Run:
    spec: Spec
    dataset: str
    seed: int
    status: str  # "trained", "cached" or "not run: …"
    result: dict[str, Any] | None = field(default=None, repr=False)
    folder: Path | None = None  # the run's folder in the store (artifact paths may be relative to it)

    @property
    def ok(self) -> bool:
        return self.result is not None


def _finished_at(res: dict[str, Any]) -> float:
    try:
        return _dt.datetime.fromisoformat(res["date"]).timestamp()
    except (KeyError, ValueError):
        return 0.0


def spec_needs_features(spec: Spec, dataset: str | None = None) -> bool:
    """Whether the spec's model, with its overrides, needs the data set's feature files (R2MR's
    ``content=random`` control does not)."""
    from .experiment import make_configs

    cls, mcfg, _ = make_configs(spec.model, dict(spec.overrides), dataset=dataset)
    check = getattr(cls, "requires_features", None)
    return bool(check(mcfg) if check else cls.needs_features)


def train_kwargs(dataset: str, spec: Spec, seed: int, data_dir: str | Path | None, device: str,
                 epochs: int | None) -> dict[str, Any]:
    """The keyword arguments of :func:`r2mr.runs.experiment.train` / ``find`` / ``run_folder`` for one run."""
    return dict(data_dir=find_dataset_root(dataset, data_dir), overrides=dict(spec.overrides), device=device,
                seed=seed, max_epochs=epochs)


def run_one(spec: Spec, dataset: str, seed: int, *, data_dir: str | Path | None = None, device: str = "cpu",
            epochs: int | None = None, force_since: float = 0.0, progress: bool = False,
            on_epoch: Callable[[dict], None] | None = None) -> Run:
    """Train (or read back) one run; a missing data set or missing features give a ``not run`` Run.
    ``on_epoch``: called with each epoch's log entry after its checkpoint is saved (a test hook)."""
    from . import experiment

    try:
        reason = missing_data_reason(dataset, data_dir, spec_needs_features(spec, dataset))
    except ConfigError as exc:  # e.g. a key this checkout's model does not have
        return Run(spec, dataset, seed, f"not run: {str(exc).split('; known keys')[0]}")
    if reason:
        return Run(spec, dataset, seed, reason)
    kwargs = train_kwargs(dataset, spec, seed, data_dir, device, epochs)
    train_missing = os.environ.get(NO_TRAIN_ENV) != "1" or bool(force_since)  # --no-train: read back, never train
    try:
        try:
            res = experiment.train(spec.model, dataset, progress=progress, on_epoch=on_epoch,
                                   train_missing=train_missing, **kwargs)
            if res is None:
                return Run(spec, dataset, seed, NOT_ARCHIVED)
        except RecordError:  # a stored record that cannot be used: --restart (force_since) recomputes it
            if not force_since:
                raise
            res = {"cached": True}  # finished at time 0: recomputed below
        if force_since and res.get("cached") and _finished_at(res) < force_since:
            res = experiment.train(spec.model, dataset, resume=False, progress=progress, on_epoch=on_epoch, **kwargs)
    except DataError as exc:
        return Run(spec, dataset, seed, "not run: " + strip_roots(str(exc), kwargs["data_dir"]))
    folder = Path(res["run_dir"]) if res.get("run_dir") else None  # the run's folder in the store
    return Run(spec, dataset, seed, "cached" if res.get("cached") else "trained", res, folder)


def run_grid(specs: Iterable[Spec], datasets: Iterable[str], seeds: Iterable[int], **kwargs: Any) -> list[Run]:
    """Every (data set, spec, seed), in that order; logs one line per run. ``kwargs`` go to :func:`run_one`."""
    specs = list(specs)
    return run_planned([PlannedRun(d, s, seed, "", kwargs.get("epochs")) for d in datasets for s in specs
                        for seed in seeds], **kwargs)


def r2mr_selection(datasets: Sequence[str], seeds: Sequence[int] | None, scale: str, epochs: int | None,
                   **kwargs: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(data set, "r2mr"): R2MR's selected grid point}`` at the converged scale, for the notebooks whose rows
    are R2MR at that point (01, 02: :func:`r2mr.runs.plan.at_r2mr_point`): R2MR's tuning grid of notebook 03,
    read from the store or the archive (trained here if absent, as notebook 03 would), then selected on
    validation. ``{}`` at other scales (their rows keep R2MR's defaults) and where the grid is incomplete."""
    from . import plan as planmod
    from . import tuning

    if scale != "converged":
        return {}
    grid = [p for p in planmod.build_plan(datasets, seeds, scale, epochs, notebooks=["03_main_results"],
                                          models=["r2mr"], tune=tuning.load()) if p.stage == 1]
    runs = run_planned(grid, **kwargs)
    return planmod.select_points((p.dataset, p.spec, r.result) for p, r in zip(grid, runs))


def notebook_plan(notebook: str, datasets: Sequence[str], seeds: Sequence[int] | None, scale: str,
                  epochs: int | None, variant: str = "official", etas: Sequence[float] | None = None,
                  **kwargs: Any) -> tuple[list[PlannedRun], dict[tuple[str, str], dict[str, Any]]]:
    """(planned runs, R2MR's selections) of notebook 01 or 02: :func:`r2mr.runs.plan.notebook_grid` with R2MR's
    selected points (:func:`r2mr_selection`; ``kwargs`` go to :func:`run_one` for its grid), so that at the
    converged scale every row is R2MR at the main table's configuration with its own switch."""
    from . import plan as planmod
    from . import tuning

    selected = r2mr_selection(datasets, seeds, scale, epochs, **kwargs)
    return planmod.notebook_grid(notebook, datasets, seeds, scale, epochs, variant, etas=etas,
                                 tune=tuning.load(), selected=selected), selected


def run_planned(planned: Sequence[PlannedRun], **kwargs: Any) -> list[Run]:
    """Train or read back each planned run in order (the notebooks' path through the sequential executor,
    :func:`r2mr.runs.sequential.execute_sequential`); ``kwargs`` go to :func:`run_one` (each run's own epoch
    cap); a pending row (its grid has not selected its point) is a :data:`PENDING` Run; one log line per run;
    an exception of a run stops here."""
    from .sequential import Outcome, Progress, execute_sequential

    runs: list[Run] = []

    def one(p: PlannedRun) -> Outcome:
        t0 = time.perf_counter()
        if p.spec.tuning == "pending":  # its configuration is not known yet: never trained at the defaults
            runs.append(Run(p.spec, p.dataset, p.seed, PENDING))
            return Outcome(p, PENDING, None, 0.0)
        runs.append(run_one(p.spec, p.dataset, p.seed, **{**kwargs, "epochs": p.epochs}))
        return Outcome(p, runs[-1].status, runs[-1].result, time.perf_counter() - t0)

    execute_sequential(planned, one, Progress(len(planned), log=log))
    return runs


def artifacts(run: Run) -> dict[str, Any]:
    """The artifacts a finished run saved (R2MR: final Reviewer scores, quality states, rewrite rounds),
    loaded without executing code (``weights_only``); the stored path is relative to the run folder."""
    from ..core.atomic_io import load_torch, result_path

    path = result_path(run.result) if run.ok else None
    if path is None or not path.is_file():
        raise DataError(f"{run.spec.label} on {run.dataset} (seed {run.seed}): no artifacts file; fix: rerun it")
    return load_torch(path)


def _metrics_of(res: dict[str, Any], selection: str) -> dict[str, float]:
    return res["test"] if selection == "valid" else res["test_selected_by_test"]


def summarise(runs: Sequence[Run], metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Tidy table: one row per (data set, label, selection, metric) with mean and std over seeds.

    Columns: dataset, label, model, role, selection, metric, mean, std (sample std, ddof 1; NaN for one seed),
    n_seeds, seeds, status ("ok" or the "not run: …" reason), best_epoch (mean), epochs_run (mean),
    seconds_per_epoch (mean), device.
    """
    rows = []
    groups: dict[tuple[str, Spec], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.dataset, r.spec), []).append(r)
    for (dataset, spec), group in groups.items():
        done = [r for r in group if r.ok]
        base = dict(dataset=dataset, label=spec.label, model=spec.model, role=spec.role)
        if not done:
            for sel in spec.selections:
                for m in metrics:
                    rows.append({**base, "selection": sel, "metric": m, "mean": np.nan, "std": np.nan, "n_seeds": 0,
                                 "seeds": "", "status": group[0].status})
            continue
        for sel in spec.selections:
            epoch_key = "best_epoch" if sel == "valid" else "selected_by_test_epoch"
            for m in metrics:
                vals = np.array([_metrics_of(r.result, sel)[m] for r in done], dtype=float)
                rows.append({**base, "selection": sel, "metric": m, "mean": float(vals.mean()),
                             "std": float(vals.std(ddof=1)) if len(vals) > 1 else np.nan, "n_seeds": len(vals),
                             "seeds": ",".join(str(r.seed) for r in done), "status": "ok",
                             "best_epoch": float(np.mean([r.result[epoch_key] for r in done])),
                             "epochs_run": float(np.mean([r.result["epochs_run"] for r in done])),
                             "seconds_per_epoch": float(np.mean([r.result["seconds_per_epoch"] for r in done])),
                             "device": "; ".join(sorted({r.result.get("device_name", r.result["device"])
                                                         for r in done}))})
    return pd.DataFrame(rows)
