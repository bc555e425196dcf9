"""Tabulate result JSON files of `python -m r2mr train --out FILE` beside the published numbers.

Usage: python benchmarks/summarise_runs.py RESULT.json [...] --out results/benchmarks/gpu_runs [--commit SHA]

Writes <out>.csv and <out>.md: one row per run (model, data set, variant, the overrides that differ from the
model's defaults, device, seed, best epoch / epochs run, test metrics at the best-valid epoch, the first
published reference with the relative difference of Recall@20, seconds per training epoch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from r2mr.core import config as cfgmod
from r2mr.core.atomic_io import write_table
from r2mr.models.r2mr.model import resolve
from r2mr.report.published import METRICS, published
from r2mr.runs.experiment import make_configs


def changed(res: dict) -> str:
    """The result's configuration entries that differ from the model's per-data-set defaults."""
    base = {"variant": res["variant"]} if res.get("variant") else None  # the variant's own presets are defaults
    _, mcfg, tcfg = make_configs(res["model"], base, res["seed"], None, dataset=res["dataset"])
    if res["model"] == "r2mr":
        mcfg = resolve(mcfg)  # results record the resolved presets
    default = cfgmod.to_dict(tcfg, mcfg)
    diff = {k: v for k, v in res["config"].items()
            if k not in ("seed", "max_epochs", "variant") and default.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in sorted(diff.items()))


def row(res: dict) -> dict:
    ref = next(iter(published(res["dataset"], res["model"])), None)
    pub = ref.metrics.get("recall@20") if ref else None
    r20 = res["test"]["recall@20"]
    return {"model": res["model"], "dataset": res["dataset"], "variant": res.get("variant", ""),
            "settings": changed(res), "device": res.get("device_name", res["device"]), "seed": res["seed"],
            "best/run": f"{res['best_epoch']}/{res['epochs_run']}",
            **{f"test {m}": res["test"][m] for m in METRICS},
            "published R@20": pub, "source": ref.source.key if ref else "",
            "rel. diff R@20": (r20 / pub - 1) if pub else None, "s/epoch": res["seconds_per_epoch"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--commit", help="the commit that produced the runs (when the JSON files lack it)")
    args = p.parse_args()
    runs = [json.loads(Path(f).read_text()) for f in args.results]
    df = pd.DataFrame([row(r) for r in runs]).sort_values(["dataset", "model", "variant", "settings"])
    commits = sorted({args.commit or r.get("commit", "unknown") for r in runs})
    write_table(df.set_index("dataset"), args.out,
                {"commit": ",".join(commits), "selection": "test at the best validation Recall@20 epoch"})
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
