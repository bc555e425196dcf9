"""What the notebooks call: find data sets, run a grid of models with the run cache, summarise over seeds,
set our numbers beside the published ones, and write tables and figures with the metadata that made them.

* Data: a notebook's ``data_dir`` is the data root (``None``: ``$R2MR_DATA_DIR``, else ``./data``; a relative
  root is taken from the repository root). ``synthetic`` is looked for there first, then in the repository's
  ``./data``, where it is generated on first use.
* Runs: :func:`run_grid` trains every (spec, data set, seed) through :func:`r2mr.experiment.train`, so a
  finished run is read back from ``runs/`` and a killed one resumes. A cell that needs data that is absent is a
  :class:`Run` with status ``"not run: …"``, never a number. ``force_since`` (a UNIX time) recomputes runs that
  finished before it (``run_all.sh --force``) but reuses those made since, so two notebooks share a rerun.
* Tables: :func:`summarise` gives one tidy row per (data set, spec, selection, metric) with mean, std and the
  seeds; :func:`compare` adds the published value and the relative difference; :func:`wide_table` lays a data
  set out for reading. :class:`Outputs` writes CSV + Markdown (with a metadata footer) and PNG + PDF.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from . import published as pub
from .data.download import DATASETS as DOWNLOADABLE
from .data.mmrec import feature_files
from .errors import DataError
from .paths import DATA_ENV, REPO_ROOT, data_root
from .results import git_commit, save_figure, write_json, write_table

log = logging.getLogger(__name__)

AMAZON = ("baby", "sports", "clothing")  # the paper's data sets, always listed in the main table
SYNTHETIC = "synthetic"
SCRATCH = REPO_ROOT / "scratch"  # default output root of a notebook's quick run (git-ignored)
METRICS = pub.METRICS
SELECTIONS = {"valid": "best-valid epoch", "test": "test-selected (official rule)"}


# ---- parameters ---------------------------------------------------------------------------------------------

def parse_list(spec: str | Sequence[str] | None) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (empty items dropped)."""
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return [str(s).strip() for s in items if str(s).strip()]


def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """``"999,1,2"``, ``999`` or ``[999, 1]`` -> list of ints."""
    if isinstance(spec, int):
        return [spec]
    return [int(s) for s in parse_list(spec if isinstance(spec, str) else [str(x) for x in spec])]


# ---- data sets ----------------------------------------------------------------------------------------------

def root_of(data_dir: str | Path | None = None) -> Path:
    """The configured data root; a relative one is taken from the repository root (notebooks run elsewhere)."""
    root = data_root(data_dir)
    return root if root.is_absolute() else REPO_ROOT / root


def present(data_dir: str | Path | None = None) -> list[str]:
    """Names of the data sets under the data root (folders holding ``<name>/<name>.inter``), sorted."""
    root = root_of(data_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.inter").is_file())


def locate(name: str, data_dir: str | Path | None = None, make_synthetic: bool = True) -> Path | None:
    """The data root that holds ``name/``, or ``None``. ``synthetic`` falls back to the repository's ``./data``
    and is generated there (deterministically, default settings) when absent."""
    root = root_of(data_dir)
    if (root / name / f"{name}.inter").is_file():
        return root
    if name == SYNTHETIC:
        local = REPO_ROOT / "data"
        if not (local / name / f"{name}.inter").is_file():
            if not make_synthetic:
                return None
            from .data.synth import write

            log.info("generating the embedded synthetic data set in ./data/%s", name)
            write(local / name)
        return local
    return None


def resolve_datasets(spec: str | Sequence[str], data_dir: str | Path | None = None) -> list[str]:
    """``"auto"``: every data set under the data root (the synthetic one if there is none); else the list."""
    names = parse_list(spec)
    if names == ["auto"]:
        names = present(data_dir) or [SYNTHETIC]
    if SYNTHETIC in names:
        locate(SYNTHETIC, data_dir)  # generated on first use
    return names


def table_datasets(names: Sequence[str], data_dir: str | Path | None = None) -> list[str]:
    """``names`` plus every Amazon set of the paper that is absent (its cells then read "not run")."""
    names = list(names)
    return names + [a for a in AMAZON if a not in names and locate(a, data_dir) is None]


def inventory(names: Sequence[str], data_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per data set: found or not, its feature matrices (modality and width) and how to get it."""
    rows = []
    for name in names:
        root = locate(name, data_dir, make_synthetic=False)
        feats = feature_files(root / name) if root else {}
        shapes = {m: np.load(p, mmap_mode="r").shape for m, p in feats.items()}
        rows.append({"data set": name, "found": "yes" if root else "no",
                     "item features": ", ".join(f"{m} {s[1]}-d" for m, s in shapes.items()) or "none",
                     "note": (missing_data_reason(name, data_dir) or "").removeprefix("not run: ")
                     or ("" if feats else "graph only: models that need item features cannot run")})
    return pd.DataFrame(rows).set_index("data set")


def missing_data_reason(name: str, data_dir: str | Path | None = None, needs_features: bool = False) -> str | None:
    """Why a run on ``name`` cannot start (``"not run: …"``), or ``None`` when the data is there."""
    root = locate(name, data_dir)
    fix = (f"run `python -m r2mr data download {name}`" if name in DOWNLOADABLE
           else f"put {name}/ under the data root (--data-dir or ${DATA_ENV})")
    if root is None:
        return f"not run: data set missing ({fix})"
    if needs_features and not feature_files(root / name):
        return f"not run: item features missing ({fix})"
    return None


def load(name: str, data_dir: str | Path | None = None, features: bool = True):
    """Load data set ``name`` from wherever :func:`locate` finds it."""
    from .data import load_dataset

    root = locate(name, data_dir)
    if root is None:
        raise DataError(missing_data_reason(name, data_dir).removeprefix("not run: "))
    return load_dataset(name, root, features=features)


# ---- runs ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """One row family of a table: a label, the registered model, config overrides and its role."""

    label: str  # row label, e.g. "LightGCN" or "R2MR content control: random features"
    model: str  # registry name
    overrides: tuple[tuple[str, Any], ...] = ()  # config keys applied on top of the model's defaults
    role: str = "model"  # model | control | ablation
    selections: tuple[str, ...] = ("valid",)  # valid and/or test (the official test-selected rule)

    @classmethod
    def of(cls, label: str, model: str, role: str = "model", selections: Sequence[str] = ("valid",),
           **overrides: Any) -> "Spec":
        return cls(label, model, tuple(sorted(overrides.items())), role, tuple(selections))


LABELS = {"bpr": "BPR", "lightgcn": "LightGCN", "vbpr": "VBPR", "lattice": "LATTICE", "freedom": "FREEDOM",
          "bm3": "BM3", "mgcn": "MGCN", "lgmrec": "LGMRec", "smore": "SMORE", "r2mr": "R2MR"}


def label(model: str) -> str:
    return LABELS.get(model, model)


# Smaller sizes for the quick scale (tutorial and CPU runs); the full scale uses each model's own (published)
# sizes and epoch limits. Models not listed run at their own sizes at both scales. R2MR at the paper's sizes
# takes minutes per epoch on a CPU for the Amazon sets; the quick R2MR has d = 64, a one-layer 256-wide
# rewriter trained 30 epochs in its first round and 10 later, a round every 2 epochs (at most 5), and at
# most 50 epochs (early stopping still applies).
QUICK: dict[str, dict[str, Any]] = {
    "r2mr": dict(dim=64, rw_hidden=(256,), rw_latent=256, rw_codebook=256, rw_prompt_dim=32, rw_disc_hidden=(64,),
                 rw_first_epochs=30, rw_epochs=10, rewrite_every=2, max_rounds=5, max_epochs=50),
}
SCALES = ("quick", "full")


def scaled(model: str, scale: str) -> tuple[str, dict[str, Any]]:
    """(label suffix, overrides) of ``model`` at ``scale``: the quick preset where one exists."""
    if scale not in SCALES:
        raise ValueError(f"scale '{scale}' unknown; use quick or full")
    if scale == "quick" and model in QUICK:
        return " (quick size)", dict(QUICK[model])
    return "", {}


def model_spec(model: str, scale: str = "full", role: str = "model", label_: str | None = None,
               selections: Sequence[str] | None = None, **overrides: Any) -> Spec:
    """A spec of ``model`` at ``scale`` with extra ``overrides``; R2MR gets both selection protocols."""
    suffix, preset = scaled(model, scale)
    sels = selections or (("valid", "test") if model == "r2mr" and role == "model" else ("valid",))
    return Spec.of((label_ or label(model)) + suffix, model, role=role, selections=sels, **{**preset, **overrides})


CONTROLS = {"random": "R2MR content control: random features", "frozen": "R2MR content control: frozen features"}


# Notebook 02: the rewriter ablations (R2MR's own switches; rw_arch and rw_discriminator are in rewriter.py).
ABLATIONS: list[tuple[str, dict[str, Any]]] = [
    ("full rewriter, official acceptance (s_new > η)", {}),
    ("no rewriter", {"max_rounds": 0}),
    ("plain MLP mapping", {"rw_arch": "mlp"}),
    ("autoencoder, no codebook", {"rw_arch": "ae"}),
    ("codebook, no discriminator", {"rw_discriminator": False}),
    ("paper acceptance (s_new > s_old)", {"accept_rule": "improve"}),
]
ETAS = {"quick": (0.4, 0.5, 0.6), "full": (0.3, 0.4, 0.5, 0.6, 0.7)}


def ablation_specs(scale: str = "full", variant: str = "official") -> list[Spec]:
    """The rewriter ablations of notebook 02 (role ``ablation``), then R2MR's content controls."""
    specs = [model_spec("r2mr", scale, role="ablation", label_=text, variant=variant, **kw) for text, kw in ABLATIONS]
    return specs + [model_spec("r2mr", scale, role="control", label_=text, variant=variant, content=kind)
                    for kind, text in CONTROLS.items()]


def eta_specs(etas: Sequence[float], scale: str = "full", variant: str = "official") -> list[Spec]:
    """R2MR retrained at each quality threshold η (the default η = 0.5 is the full-rewriter row)."""
    return [model_spec("r2mr", scale, role="ablation", label_=f"η = {e:g}", variant=variant,
                       **({} if e == 0.5 else {"eta": float(e)})) for e in etas]


def main_specs(models: str | Sequence[str] = "all", scale: str = "full", controls: bool = True) -> list[Spec]:
    """The main table's specs: every registered model (baselines first, R2MR last), then R2MR's content
    controls (random features of the same shapes; real features kept frozen), labelled as controls."""
    from .models import MODELS

    names = list(MODELS) if parse_list(models) in ([], ["all"]) else parse_list(models)
    names.sort(key=lambda m: (m == "r2mr", list(LABELS).index(m) if m in LABELS else len(LABELS), m))
    specs = [model_spec(m, scale) for m in names]
    if controls and "r2mr" in names:
        specs += [model_spec("r2mr", scale, role="control", label_=text, content=kind)
                  for kind, text in CONTROLS.items()]
    return specs


@dataclass
class Run:
    spec: Spec
    dataset: str
    seed: int
    status: str  # "trained", "cached" or "not run: …"
    result: dict[str, Any] | None = field(default=None, repr=False)

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


def _strip_paths(text: str, *roots: Path) -> str:
    for r in sorted({str(p) for p in roots if p}, key=len, reverse=True):
        text = text.replace(r, "<data>" if r != str(REPO_ROOT) else ".")
    return text


def run_one(spec: Spec, dataset: str, seed: int, *, data_dir: str | Path | None = None, device: str = "cpu",
            epochs: int | None = None, force_since: float = 0.0, progress: bool = False) -> Run:
    """Train (or read back) one run; a missing data set or missing features give a ``not run`` Run."""
    from .experiment import train

    reason = missing_data_reason(dataset, data_dir, spec_needs_features(spec, dataset))
    if reason:
        return Run(spec, dataset, seed, reason)
    root = locate(dataset, data_dir)
    kwargs = dict(data_dir=root, overrides=dict(spec.overrides), device=device, seed=seed, max_epochs=epochs,
                  progress=progress)
    try:
        res = train(spec.model, dataset, **kwargs)
        if force_since and res.get("cached") and _finished_at(res) < force_since:
            res = train(spec.model, dataset, resume=False, **kwargs)
    except DataError as exc:
        return Run(spec, dataset, seed, "not run: " + _strip_paths(str(exc), root, REPO_ROOT))
    status = "cached" if res.get("cached") else "trained"
    return Run(spec, dataset, seed, status, res)


def run_grid(specs: Iterable[Spec], datasets: Iterable[str], seeds: Iterable[int], **kwargs: Any) -> list[Run]:
    """Every (data set, spec, seed), in that order; logs one line per run. ``kwargs`` go to :func:`run_one`."""
    grid = [(d, s, seed) for d in datasets for s in specs for seed in seeds]
    runs, said = [], set()
    for n, (d, s, seed) in enumerate(grid, 1):
        r = run_one(s, d, seed, **kwargs)
        runs.append(r)
        if r.ok:
            t = r.result["test"]
            log.info("[%d/%d] %s on %s, seed %d: %s, best epoch %d/%d, test recall@20 %.4f", n, len(grid), s.label, d,
                     seed, r.status, r.result["best_epoch"], r.result["epochs_run"], t.get("recall@20", math.nan))
        elif r.status.startswith("not run: data set missing"):
            if d not in said:  # one line for a missing data set, not one per cell
                log.info("[%d/%d] %s: %s (every run on it)", n, len(grid), d, r.status)
                said.add(d)
        else:
            log.info("[%d/%d] %s on %s, seed %d: %s", n, len(grid), s.label, d, seed, r.status)
    return runs


def artifacts(run: Run) -> dict[str, Any]:
    """The artifacts a finished run saved (R2MR: final Reviewer scores, quality states, rewrite rounds)."""
    import torch

    path = run.result.get("artifacts") if run.ok else None
    if not path or not Path(path).is_file():
        raise DataError(f"{run.spec.label} on {run.dataset} (seed {run.seed}): no artifacts file; fix: rerun it")
    return torch.load(path, map_location="cpu", weights_only=False)


# ---- summaries ----------------------------------------------------------------------------------------------

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
            for m in metrics:
                vals = np.array([_metrics_of(r.result, sel)[m] for r in done], dtype=float)
                epoch_key = "best_epoch" if sel == "valid" else "selected_by_test_epoch"
                rows.append({**base, "selection": sel, "metric": m, "mean": float(vals.mean()),
                             "std": float(vals.std(ddof=1)) if len(vals) > 1 else np.nan, "n_seeds": len(vals),
                             "seeds": ",".join(str(r.seed) for r in done), "status": "ok",
                             "best_epoch": float(np.mean([r.result[epoch_key] for r in done])),
                             "epochs_run": float(np.mean([r.result["epochs_run"] for r in done])),
                             "seconds_per_epoch": float(np.mean([r.result["seconds_per_epoch"] for r in done])),
                             "device": "; ".join(sorted({r.result.get("device_name", r.result["device"]) for r in done}))})
    return pd.DataFrame(rows)


def run_extras(run: Run) -> dict[str, float]:
    """Rewrite totals and quality shares of one finished R2MR run (empty for other models)."""
    from . import analysis

    if not run.ok or not run.result.get("artifacts") or run.spec.model != "r2mr":
        return {}
    art = artifacts(run)
    s = analysis.scores_of(art)
    shares = analysis.state_shares(analysis.quality_states(s, float(art["eta"])))
    return {"eta": float(art["eta"]), **analysis.rewrite_totals(art), **{f"share {k}": v for k, v in shares.items()}}


def ablation_table(runs: Sequence[Run], metrics: Sequence[str] = METRICS,
                   reference: str | None = None) -> pd.DataFrame:
    """Per data set and spec: test metrics (mean ± std over seeds, best-valid epoch), the relative change of
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
        row = {"data set": dataset, "variant": lab, "role": g.role.iloc[0], "status": g.status.iloc[0],
               **{m: fmt_mean_std(vals["mean"].get(m), vals["std"].get(m)) for m in metrics},
               "Δ recall@20 vs row 1": fmt_pct(rel_diff(vals["mean"].get("recall@20"),
                                                        base.iloc[0] if len(base) else np.nan))}
        for col in ("accepted", "rows rewritten", "share disparity"):
            row[col] = float(ex[col].mean()) if col in ex else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def eta_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Per data set and η (from each run's config): Recall@20 and NDCG@20 (mean, std over seeds), the share of
    disparity items in the final scores at that η and the accepted rewrites (means over seeds)."""
    rows = []
    for r in runs:
        if not r.ok:
            continue
        ex = run_extras(r)
        rows.append({"data set": r.dataset, "η": float(r.result["config"].get("eta", np.nan)), "seed": r.seed,
                     "recall@20": r.result["test"]["recall@20"], "ndcg@20": r.result["test"]["ndcg@20"],
                     "share disparity": ex.get("share disparity", np.nan), "accepted": ex.get("accepted", np.nan)})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    out = df.groupby(["data set", "η"]).agg(**{"recall@20": ("recall@20", "mean"), "recall@20 std": ("recall@20", "std"),
                                               "ndcg@20": ("ndcg@20", "mean"), "ndcg@20 std": ("ndcg@20", "std"),
                                               "share disparity": ("share disparity", "mean"),
                                               "accepted": ("accepted", "mean"), "seeds": ("seed", "count")})
    return out


def timing_table(runs: Sequence[Run], data_dir: str | Path | None = None) -> pd.DataFrame:
    """Per data set and spec: training interactions, seconds per training epoch, seconds per evaluation of
    valid + test, epochs run (means over seeds) and the device, from the runs' own timings."""
    sizes: dict[str, int] = {}
    rows = []
    for r in runs:
        if not r.ok:
            continue
        if r.dataset not in sizes:
            sizes[r.dataset] = len(load(r.dataset, data_dir, features=False).train)
        rows.append({"data set": r.dataset, "model": r.spec.label, "train interactions": sizes[r.dataset],
                     "s/epoch": r.result["seconds_per_epoch"], "s/eval": r.result["seconds_per_eval"],
                     "epochs": r.result["epochs_run"], "device": r.result.get("device_name", r.result["device"])})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    return df.groupby(["data set", "model", "train interactions", "device"], sort=False).mean().reset_index()


BENCH_SCRIPT = REPO_ROOT / "benchmarks" / "bench_r2mr.py"


def benchmark(scales: Sequence[str], data_dir: str | Path | None = None, device: str = "cpu",
              force_since: float = 0.0, timeout: float = 3600.0) -> pd.DataFrame:
    """Rows of ``benchmarks/bench_r2mr.py`` (R2MR at the paper's sizes with random features of the real widths:
    seconds per epoch, per evaluation, per rewriter round, peak memory, Reviewer edge-wise vs dense), one per
    scale. ``clothing`` is the script's generated Clothing-sized graph; other scales are data sets found by
    :func:`locate`. Each scale's JSON is cached in ``runs/benchmarks/`` keyed by scale, data fingerprint and
    device, so a second call is free (``force_since`` recomputes older files)."""
    import hashlib
    import json
    import subprocess

    from .experiment import fingerprint
    from .paths import RUNS

    if not BENCH_SCRIPT.is_file():
        raise DataError(f"{BENCH_SCRIPT.name}: benchmark script missing; fix: restore benchmarks/")
    rows = []
    for scale in scales:
        root = REPO_ROOT / "data" if scale == "clothing" else locate(scale, data_dir)
        if root is None:
            continue
        data = "generated" if scale == "clothing" else fingerprint(load(scale, data_dir, features=False))
        script = hashlib.sha1(BENCH_SCRIPT.read_bytes()).hexdigest()[:8]
        out = RUNS / "benchmarks" / f"{scale}-{data}-{device}-{script}.json"
        if not out.is_file() or out.stat().st_mtime < force_since:
            log.info("benchmarking R2MR on %s (%s) ...", scale, device)
            cmd = [sys.executable, str(BENCH_SCRIPT), "--data-dir", str(root), "--device", device, "--scales", scale,
                   "--out", str(out)]
            proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"benchmark on {scale} failed: {short_paths(proc.stderr.strip().splitlines()[-1])}")
        doc = json.loads(out.read_text())
        rows += [{**r, "scale": scale, "timer": doc["meta"].get("timer", "")} for r in doc["rows"]]
    return pd.DataFrame(rows)


def rel_diff(ours: float, published: float) -> float:
    """(ours - published) / published, as a fraction; NaN where either is missing."""
    if ours is None or published is None or not np.isfinite(ours) or not np.isfinite(published) or published == 0:
        return np.nan
    return (ours - published) / published


def compare(tidy: pd.DataFrame) -> pd.DataFrame:
    """Add ``published``, ``source``, ``source_selection`` and ``rel_diff`` (first reference of each data set).

    A published number sits on our row of the same selection protocol; if we have no such row for that model,
    on our best-valid row (``source_selection`` then tells the protocols differ)."""
    out = tidy.copy()
    for col in ("published", "rel_diff"):
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
        out.loc[idx, "rel_diff"] = rel_diff(row["mean"], ref.metrics[metric])
    return out


def fmt_mean_std(mean: float, std: float, digits: int = 4) -> str:
    """``0.0512 ± 0.0007``; ``0.0512`` for one seed; ``—`` when missing."""
    if mean is None or not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None and np.isfinite(std) else "")


def fmt_pct(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{100 * x:+.1f}%"


def wide_table(tidy: pd.DataFrame, metrics: Sequence[str] = METRICS, references: bool = True) -> pd.DataFrame:
    """A reader's table: per data set and label, our row per selection, then each published row and its Δ.

    ``tidy`` comes from :func:`summarise`; rows keep its order. A label that was not run has one row whose
    ``row`` column carries the reason."""
    out = []
    for (dataset, label), g in tidy.groupby(["dataset", "label"], sort=False):
        model, role = g.model.iloc[0], g.role.iloc[0]
        if (g.status != "ok").all():
            out.append({"dataset": dataset, "model": label, "row": g.status.iloc[0], **{m: "" for m in metrics}})
            continue
        ours = {}
        for sel, gs in g.groupby("selection", sort=False):
            vals = gs.set_index("metric")
            n = int(vals.n_seeds.iloc[0])
            ours[sel] = vals["mean"]
            out.append({"dataset": dataset, "model": label,
                        "row": f"ours, {SELECTIONS[sel]} ({n} seed{'s' if n > 1 else ''})",
                        **{m: fmt_mean_std(vals["mean"].get(m), vals["std"].get(m)) for m in metrics}})
        if not references or role != "model":
            continue
        for ref in pub.published(dataset, model):
            sel = ref.source.selection if ref.source.selection in ours else "valid"
            out.append({"dataset": dataset, "model": label, "row": f"published: {ref.source.key} ({SELECTIONS[ref.source.selection]})",
                        **{m: f"{ref.metrics[m]:.4f}" if m in ref.metrics else "—" for m in metrics}})
            out.append({"dataset": dataset, "model": label, "row": f"Δ ours ({sel}) vs {ref.source.key}",
                        **{m: fmt_pct(rel_diff(ours[sel].get(m, np.nan), ref.metrics.get(m, np.nan))) for m in metrics}})
    return pd.DataFrame(out, columns=["dataset", "model", "row", *metrics])


def contract(tidy: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The quick run's checked numbers: mean per (data set, label, selection) x metric, rounded."""
    ok = tidy[tidy.status == "ok"]
    table = ok.pivot_table(index=["dataset", "label", "selection"], columns="metric", values="mean", sort=False)
    return table[[m for m in METRICS if m in table.columns]].round(digits)


# ---- statistics ---------------------------------------------------------------------------------------------

def statistics_vs_published(ds: Any) -> pd.DataFrame:
    """Our counts of ``ds`` beside the published statistics (reference-numbers §3.1) and the difference."""
    from .data import statistics

    st = statistics(ds)
    ours = {"users": ds.n_users, "items": ds.n_items, "interactions": int(st.loc["all", "interactions"]),
            "train": int(st.loc["train", "interactions"]), "valid": int(st.loc["valid", "interactions"]),
            "test": int(st.loc["test", "interactions"]), "sparsity %": 100 * float(st.loc["all", "sparsity"])}
    ref = pub.STATISTICS.get(ds.name)
    theirs = {k: (100 * ref.sparsity if k == "sparsity %" else getattr(ref, k)) for k in ours} if ref else {}
    df = pd.DataFrame({"ours": pd.Series(ours, dtype=object),
                       "published": pd.Series({k: theirs.get(k, "—") for k in ours}, dtype=object)})
    df["difference"] = [("—" if not ref else (f"{ours[k] - theirs[k]:+.4f}" if k == "sparsity %" else f"{ours[k] - theirs[k]:+,d}"))
                        for k in ours]
    df["ours"] = [f"{v:.4f}" if k == "sparsity %" else f"{v:,d}" for k, v in ours.items()]
    df["published"] = [f"{v:.4f}" if k == "sparsity %" and v != "—" else (f"{v:,d}" if v != "—" else v)
                       for k, v in zip(ours, df.published)]
    df.index.name = ds.name
    return df


def degrees(ds: Any, split: str = "train") -> dict[str, np.ndarray]:
    """Interaction counts per user and per item in ``split`` (zeros included)."""
    sp = ds.split(split)
    return {"user": np.bincount(sp.users, minlength=ds.n_users), "item": np.bincount(sp.items, minlength=ds.n_items)}


def degree_summary(datasets: dict[str, Any], split: str = "train") -> pd.DataFrame:
    """Per data set and side (user, item): mean, median, 90th percentile and max degree, and zero-degree count."""
    rows = []
    for name, ds in datasets.items():
        for side, deg in degrees(ds, split).items():
            rows.append({"data set": name, "side": side, "count": len(deg), "mean": float(deg.mean()),
                         "median": float(np.median(deg)), "p90": float(np.percentile(deg, 90)),
                         "max": int(deg.max()), f"no {split} interaction": int((deg == 0).sum())})
    return pd.DataFrame(rows).set_index(["data set", "side"])


def corruption_summary(name: str = SYNTHETIC, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Planted corruption of a synthetic set: items per (text corrupted, image corrupted) combination."""
    from .data.synth import load_quality

    q = load_quality(locate(name, data_dir) / name).pivot(index="item", columns="modality", values="corrupted")
    kind = np.select([q.text & q.image, q.text, q.image], ["both corrupted", "text corrupted", "image corrupted"],
                     "both informative")
    counts = pd.Series(kind).value_counts().reindex(["both informative", "text corrupted", "image corrupted",
                                                     "both corrupted"], fill_value=0)
    return pd.DataFrame({"items": counts, "share": counts / counts.sum()}).rename_axis(name)


def planted_corruption(name: str = SYNTHETIC, data_dir: str | Path | None = None) -> dict[str, np.ndarray] | None:
    """``{modality: corrupted (n_items,)}`` of a synthetic set, or ``None`` where there is no ground truth."""
    from .analysis import corruption_masks
    from .data.synth import load_quality

    root = locate(name, data_dir, make_synthetic=False)
    if root is None or not (root / name / "quality.csv").is_file():
        return None
    q = load_quality(root / name)
    return corruption_masks(q, int(q.item.max()) + 1)


# ---- outputs ------------------------------------------------------------------------------------------------

class Outputs:
    """Where one notebook writes: ``<root>/results/<notebook>/<name>.{csv,md}`` and
    ``<root>/figures/<notebook>_<name>.{png,pdf}``. ``root`` ``None`` is the git-ignored ``scratch/`` (quick
    runs); ``run_all.sh`` passes the repository root."""

    def __init__(self, notebook: str, root: str | Path | None = None) -> None:
        self.notebook = notebook
        self.root = Path(root) if root else SCRATCH
        if not self.root.is_absolute():
            self.root = REPO_ROOT / self.root
        self.results = self.root / "results" / notebook
        self.figures = self.root / "figures"
        self.written: list[Path] = []
        self.started = time.time()

    def _rel(self, p: Path) -> str:
        try:
            return str(p.relative_to(REPO_ROOT))
        except ValueError:
            return p.name

    def table(self, df: pd.DataFrame, name: str, meta: dict[str, Any] | None = None, index: bool = True) -> str:
        stem = self.results / name
        write_table(df if index else df.set_index(df.columns[0]), stem, meta)
        self.written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
        return self._rel(stem.with_suffix(".csv"))

    def figure(self, fig: Any, name: str) -> str:
        stem = self.figures / f"{self.notebook}_{name}"
        save_figure(fig, stem)
        self.written += [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
        return self._rel(stem.with_suffix(".png"))

    def finish(self, params: dict[str, Any], runs: Sequence[Run] = ()) -> str:
        """Write ``run.json`` (parameters, commit, devices, seeds, date, wall time, files) and list the files."""
        info = {"notebook": self.notebook, "parameters": params, **meta(runs),
                "wall_seconds": round(time.time() - self.started, 1),
                "files": [self._rel(p) for p in self.written]}
        path = self.results / "run.json"
        write_json(path, info)
        return "\n".join(["wrote:"] + [f"  {self._rel(p)}" for p in [*self.written, path]])


def meta(runs: Sequence[Run] = (), **extra: Any) -> dict[str, Any]:
    """Provenance for a table footer: data sets, devices, variants, seeds, commit and date."""
    done = [r for r in runs if r.ok]
    variants = sorted({str(r.result["config"]["variant"]) for r in done if "variant" in r.result.get("config", {})})
    out = {"data sets": ", ".join(dict.fromkeys(r.dataset for r in runs)) or extra.pop("datasets", ""),
           "device": "; ".join(sorted({r.result.get("device_name", r.result["device"]) for r in done})) or "n/a",
           "variant": ", ".join(variants) or "n/a",
           "seeds": ", ".join(str(s) for s in dict.fromkeys(r.seed for r in done)) or "n/a",
           **extra, "commit": git_commit(),
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return out


# ---- notebook set-up ----------------------------------------------------------------------------------------

_ABS_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/:'\"`]+/)+([^\s/:'\"`]+/[^\s/:'\"`]+)")


def short_paths(text: str) -> str:
    """Paths in the repository made relative; other absolute paths cut to ``…/<parent>/<name>``."""
    text = text.replace(str(REPO_ROOT) + "/", "")
    return _ABS_PATH.sub(lambda m: "…/" + m.group(1), text)


class _ShortPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = short_paths(record.getMessage()), None
        return True


def setup_notebook() -> str:
    """Log r2mr's progress lines to the notebook, quiet plotting defaults; returns a version line to print."""
    import matplotlib
    import torch

    from . import __version__

    logger = logging.getLogger("r2mr")
    if not any(getattr(h, "_r2mr_notebook", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(message)s"))
        h.addFilter(_ShortPaths())
        h._r2mr_notebook = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.setLevel(logging.WARNING)  # the library's warnings (e.g. dropped rows) ...
    logger.propagate = False
    logging.getLogger(__name__).setLevel(logging.INFO)  # ... and one progress line per run
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    pd.set_option("display.max_colwidth", 90)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "figure.figsize": (7.0, 3.6)})
    return (f"r2mr {__version__}, torch {torch.__version__}, numpy {np.__version__}, pandas {pd.__version__}, "
            f"python {sys.version.split()[0]}")
