"""The ``plan`` and ``run-all`` commands: validate the options, build the run plan (:mod:`r2mr.runs.plan`), show
which runs are stored and the work left, execute the missing runs (:mod:`r2mr.runs.executors`), then the notebooks
(:mod:`r2mr.cli.pipeline`). No torch import at module level (``python -m r2mr --help`` stays fast).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..core.errors import ConfigError
from ..core.formatting import fmt_seconds
from ..core.paths import data_root
from ..core.threads import default_jobs
from ..data.corrupt import base_name
from ..data.discovery import SYNTHETIC, find_dataset_root, missing_data_reason, requested_datasets, table_datasets
from ..runs import plan as planmod
from ..runs.executors import execute_plan
from ..runs.store import RecordError
from ..runs.two_stage import run_two_stages
from .pipeline import FULL_SEEDS, SMOKE_ROOT, Invocation, default_scale, describe, notebook_paths
from .plan_checks import archive_line, stop_if_failed, stop_if_unreadable, unreadable

# Rough work estimate where the store has no timing of a (model, data set) yet: seconds per training epoch
# plus one evaluation, per 100,000 training interactions, one CPU thread (TikTok quick-size runs of
# results/04_efficiency, divided by the old / new speed-up of the CPU kernels measured by
# benchmarks/bench_kernels.py in its newest idle run, R2MR at full size by its own row; `benchmarks/speed_doc.py
# --check` recomputes them), and a typical number of epochs to early stopping. A GPU is taken as 10x faster.
SECONDS_PER_EPOCH = {"bpr": 0.77, "lightgcn": 1.43, "vbpr": 1.29, "lattice": 3.77, "freedom": 2.0, "bm3": 2.41,
                     "mgcn": 30.02, "r2mr": 5.93, "r2mr full": 93.8}
TYPICAL_EPOCHS = {"bpr": 55, "lightgcn": 120, "vbpr": 50, "lattice": 140, "freedom": 80, "bm3": 100, "mgcn": 50,
                  "r2mr": 40}
GPU_SPEEDUP = 10.0


def check_device(device: str) -> str:
    """The device the runs use: ``auto`` -> ``cuda`` or ``cpu``; an unknown name or ``cuda`` without a visible
    GPU is a one-line ConfigError (the name rule is :func:`r2mr.cli.arguments.device`, the resolution
    :func:`r2mr.training.trainer.resolve_device`)."""
    from ..training.runtime import resolve_device
    from .arguments import device as device_name

    try:
        device_name(device)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"--device {exc}; fix: e.g. --device auto") from None
    return str(resolve_device(device))


def invocation(args: argparse.Namespace) -> Invocation:
    """Validate the options (one ConfigError line each) into an :class:`Invocation`; nothing is written."""
    smoke = getattr(args, "smoke", False)
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs} is not allowed (allowed: an integer >= 1); fix: e.g. --epochs 10")
    seeds = planmod.parse_seed_spec(args.seeds or ("999" if smoke else FULL_SEEDS))
    root = str(data_root(args.data_dir)) if (args.data_dir or os.environ.get("R2MR_DATA_DIR")) else None
    names = requested_datasets(args.datasets or (SYNTHETIC if smoke else None), root)  # each present (or synthetic)
    device = check_device(args.device)
    return Invocation(datasets=names, data_dir=root, device=device, seeds=seeds,
                      epochs=args.epochs if args.epochs is not None else (2 if smoke else None),
                      scale=args.scale or default_scale(device, smoke),
                      force_since=time.time() if getattr(args, "restart", False) else 0.0,
                      output_root=SMOKE_ROOT if smoke else ".", notebooks=notebook_selection(args.notebooks),
                      tune=not smoke, train=not getattr(args, "no_train", False))


def notebook_selection(select: str | None) -> list[Path]:
    """:func:`r2mr.pipeline.notebook_paths` of the ``--notebooks`` prefixes (every notebook for none)."""
    return notebook_paths(planmod.parse_list(select))


def tuning_plan(inv: Invocation) -> Any:
    """The declared tuning grids (``r2mr/configs/tuning.yaml``); None for ``--smoke`` (the untuned tutorial run:
    its main rows are labelled ``untuned (defaults)``)."""
    from ..runs import tuning

    return tuning.load() if inv.tune else None


def run_plan(inv: Invocation, models: str | Sequence[str] = "all",
             selected: dict[tuple[str, str], dict[str, Any]] | None = None) -> list[planmod.PlannedRun]:
    """The runs the invocation's notebooks need (03's table also lists absent Amazon sets: 'no data'); stage-2
    rows use ``selected`` (:func:`r2mr.runs.plan.select_points`), pending where it has no entry."""
    names = [p.stem for p in inv.notebooks]
    return planmod.build_plan(inv.datasets, inv.seeds, inv.scale, inv.epochs,
                              notebooks=[n for n in planmod.NOTEBOOKS if n in names],
                              table_datasets=table_datasets(inv.datasets, inv.data_dir), models=models,
                              tune=tuning_plan(inv), selected=selected)


def staged_plan(inv: Invocation) -> tuple[list[planmod.PlannedRun], list[tuple[str, dict[str, Any] | None]]]:
    """The plan and its status, with stage 2 filled from whatever tuning grids the store already holds."""
    planned = run_plan(inv, selected=stored_selection(inv))
    return planned, plan_status(planned, inv.data_dir, inv.device)


def stored_selection(inv: Invocation) -> dict[tuple[str, str], dict[str, Any]]:
    """The points the tuning grids already in the store select (:func:`r2mr.runs.plan.select_points`)."""
    grid = [r for r in run_plan(inv) if r.stage == 1]
    return planmod.select_points((r.dataset, r.spec, res) for r, (_, res) in
                                 zip(grid, plan_status(grid, inv.data_dir, inv.device)))


def plan_status(planned: Sequence[planmod.PlannedRun], data_dir: str | None,
                device: str) -> list[tuple[str, dict[str, Any] | None]]:
    """Per planned run: (``stored`` | ``archived`` (in the evidence archive, not yet in the store) | ``to train``
    | ``not run: …`` | ``invalid: …``, stored result or None);
    each data set is loaded once (with and without features, as the store keys it)."""
    from ..data.discovery import load_dataset_named
    from ..models import get_model
    from ..runs import experiment
    from ..runs.notebook_runs import spec_needs_features

    loaded: dict[tuple[str, bool], Any] = {}
    out = []
    for run in planned:
        try:
            if run.spec.tuning == "pending":
                reason = missing_data_reason(run.dataset, data_dir, spec_needs_features(run.spec, run.dataset))
                out.append((reason or "after tuning", None))
                continue
            found = find_dataset_root(run.dataset, data_dir) is not None
            reason = missing_data_reason(run.dataset, data_dir, found and spec_needs_features(run.spec, run.dataset))
            if reason:
                out.append(("to train" if run.dataset == SYNTHETIC and "data set missing" in reason else reason, None))
                continue
            feats = get_model(run.model).needs_features
            if (run.dataset, feats) not in loaded:
                loaded[(run.dataset, feats)] = load_dataset_named(run.dataset, data_dir, features=feats)
            res = experiment.find(run.model, loaded[(run.dataset, feats)], overrides=run.overrides, device=device,
                                  seed=run.seed, max_epochs=run.epochs)
        except RecordError as exc:  # a stored record that cannot be used: reported before anything trains
            out.append((f"unreadable: {str(exc).split('; fix:')[0]}", None))
            continue
        except ConfigError as exc:
            out.append((f"invalid: {str(exc).split('; known keys')[0]}", None))
            continue
        out.append(("to train" if not res else ("archived" if res.get("source") == "archive" else "stored"), res))
    return out


def estimate_seconds(planned: Sequence[planmod.PlannedRun], status: Sequence[tuple[str, Any]], data_dir: str | None,
                     device: str) -> tuple[float, int]:
    """(seconds of training left, how many of those runs were timed from stored runs of the same model and
    data set); the others from the declared table, scaled by the number of training interactions."""
    timed: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run, (_, res) in zip(planned, status):
        if res:
            timed[(run.model, run.dataset)].append((res["seconds_per_epoch"] + res["seconds_per_eval"])
                                                   * res["epochs_run"])
    total, from_store, sizes = 0.0, 0, {}
    for run, (st, _) in zip(planned, status):
        if st not in ("to train", "after tuning"):
            continue
        if timed[(run.model, run.dataset)]:
            total += sum(timed[(run.model, run.dataset)]) / len(timed[(run.model, run.dataset)])
            from_store += 1
            continue
        if run.dataset not in sizes:
            sizes[run.dataset] = _interactions(run.dataset, data_dir)
        key = "r2mr full" if run.model == "r2mr" and run.scale == "full" else run.model
        epochs = min(run.epochs or 10**6, TYPICAL_EPOCHS.get(run.model, 100))
        per_epoch = SECONDS_PER_EPOCH.get(key, 5.0) * sizes[run.dataset] / 1e5
        total += per_epoch * epochs / (GPU_SPEEDUP if device == "cuda" else 1.0)
    return total, from_store


def _interactions(dataset: str, data_dir: str | None) -> int:
    root = find_dataset_root(dataset, data_dir)
    if root is None:
        return 25_000  # the synthetic set before it is generated
    base = base_name(dataset)  # a corrupted variant: its clean set's interactions
    with open(root / base / f"{base}.inter", "rb") as fh:
        return max(1, sum(1 for _ in fh) - 1)


def format_plan(planned: Sequence[planmod.PlannedRun], status: Sequence[tuple[str, Any]]) -> str:
    """Grouped by notebook (a run shared by several is listed under the first), then data set and row."""
    rows: dict[str, dict[str, dict[str, dict[str, list[str]]]]] = defaultdict(lambda: defaultdict(dict))
    for run, (st, _) in zip(planned, status):
        row = rows[run.purposes[0]][run.dataset].setdefault(run.spec.label, defaultdict(list))
        row[st].append(str(run.seed))
    lines = []
    for nb, by_ds in rows.items():
        also = sorted({p for r in planned if r.purposes[0] == nb for p in r.purposes[1:]})
        lines.append(f"{nb}" + (f" (its runs also serve {', '.join(also)})" if also else ""))
        for ds, by_label in by_ds.items():
            kinds = {st for by_status in by_label.values() for st in by_status}
            if len(kinds) == 1 and next(iter(kinds)).startswith("not run: data set missing"):
                lines.append(f"  {ds}: all {len(by_label)} rows {next(iter(kinds))}")
                continue
            lines.append(f"  {ds}")
            width = max(len(lab) for lab in by_label)
            for lab, by_status in by_label.items():
                cells = "; ".join(f"{st} (seeds {','.join(seeds)})" for st, seeds in by_status.items())
                lines.append(f"    {lab:<{width}}  {cells}")
    return "\n".join(lines)


def summary(planned: Sequence[planmod.PlannedRun], status: Sequence[tuple[str, Any]], seconds: float,
            from_store: int, device: str) -> str:
    counts = defaultdict(int)
    for st, _ in status:
        counts[st.split(":")[0]] += 1
    todo = counts["to train"] + counts["after tuning"]
    return (f"{len(planned)} runs: {counts['stored']} stored, "
            + (f"{counts['archived']} in the evidence archive, " if counts["archived"] else "")
            + f"{counts['to train']} to train"
            + (f", {counts['after tuning']} after tuning (stage 2: the grid's selected configuration)"
               if counts["after tuning"] else "")
            + (f", {counts['not run']} cannot run (data or features missing)" if counts["not run"] else "")
            + (f", {counts['invalid']} invalid (config)" if counts["invalid"] else "")
            + (f", {counts['unreadable']} stored but unreadable" if counts["unreadable"] else "")
            + (f"\nwork left: about {fmt_seconds(seconds)} of training on {device}, one run at a time "
               f"({from_store} of {todo} estimated from stored runs' timings, the rest from r2mr.cli.plan_commands's "
               f"declared seconds per epoch; --jobs N or Ray divide it by up to the runs at once)" if todo else ""))


def plan_main(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """``python -m r2mr plan``: print the plan, what is stored and the work left; trains nothing."""
    stream = stream or sys.stdout
    inv = invocation(args)
    planned, status = staged_plan(inv)
    seconds, from_store = estimate_seconds(planned, status, inv.data_dir, inv.device)
    print(describe(inv).splitlines()[0] + "\n" + describe(inv).splitlines()[1], file=stream)
    print(format_plan(planned, status), file=stream)
    print(summary(planned, status, seconds, from_store, inv.device), file=stream, flush=True)
    if unreadable(planned, status):
        print(unreadable(planned, status), file=stream, flush=True)
    return 0


def run_all_main(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """``run-all``: validate, generate the synthetic set if asked for, execute the plan's missing runs, then the
    notebooks (moved into results/executed/ only when all succeed)."""
    from ..data.discovery import ensure_synthetic
    from .pipeline import run

    stream = stream or sys.stdout
    inv = invocation(args)
    if not inv.train and (getattr(args, "train_only", False) or inv.force_since):
        raise ConfigError("--no-train with --train-only or --retrain/--restart: they ask to train; fix: drop one")
    print(describe(inv), file=stream, flush=True)
    if SYNTHETIC in inv.datasets:
        ensure_synthetic(inv.data_dir)
    jobs = args.jobs or default_jobs(inv.device)  # one thread per run by default (r2mr.core.threads)
    status: list[tuple[str, Any]] = []

    def execute(stage: int, planned: list[planmod.PlannedRun], todo: list[planmod.PlannedRun]) -> dict:
        """One stage: its status line, then the runs of ``todo`` the store lacks (all with --restart) trained."""
        status[:] = plan_status(planned, inv.data_dir, inv.device)
        stop_if_unreadable(planned, status, inv.force_since)  # before anything trains
        seconds, from_store = estimate_seconds(planned, status, inv.data_dir, inv.device)
        print(f"stage {stage}: " + summary(planned, status, seconds, from_store, inv.device), file=stream, flush=True)
        known = {r.identity: st for r, st in zip(planned, status)}
        redo = ("to train", *(("stored", "archived", "unreadable") if inv.force_since else ()))
        train = [r for r in todo if known[r.identity][0].startswith(redo)]
        outcomes = execute_plan(train, data_dir=inv.data_dir, device=inv.device, jobs=jobs, ray=args.ray,
                                gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run, stream=stream,
                                force_since=inv.force_since)
        stop_if_failed(outcomes, len(train))
        return {**{r.identity: known[r.identity][1] for r in todo}, **{o.run.identity: o.result for o in outcomes}}

    if inv.train:  # stage 1 starts from the store's selections (none with --restart: its grids are recomputed)
        run_two_stages(lambda picked: run_plan(inv, selected=picked), execute,
                       None if inv.force_since else stored_selection(inv))
    else:
        planned, status = staged_plan(inv)
        print(f"--no-train: {summary(planned, status, 0.0, 0, inv.device).splitlines()[0]}; the notebooks train "
              f"nothing: a run neither stored nor archived is a 'not run' row", file=stream, flush=True)
    print(archive_line(status, inv.force_since), file=stream, flush=True)
    if getattr(args, "train_only", False):
        print("--train-only: the plan's runs are stored; add them to the evidence archive with "
              "`python -m r2mr archive add`", file=stream, flush=True)
        return 0
    run(inv, stream)
    return 0
