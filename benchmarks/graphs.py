"""Benchmark inputs shared by the benchmark scripts: the Clothing-sized generated graph (also written as an
MMRec folder, ``python benchmarks/graphs.py FOLDER``, for whole runs through the command line) and data loading.

Only ``numpy``, ``pandas`` (writing) and ``r2mr.data`` (``Dataset``, ``Split``, ``load_dataset``) are used, so
the scripts can import an older checkout's ``r2mr`` package (``--repo``) and still build the same inputs.
"""

from __future__ import annotations

import numpy as np

CLOTHING = dict(n_users=39_387, n_items=23_033, train=197_338, valid=40_150, test=41_189)


def clothing_like(seed: int = 0):
    """A random graph with the Clothing counts: every user has a training edge, skewed item popularity."""
    from r2mr.data import Dataset, Split

    c, rng = CLOTHING, np.random.default_rng(seed)
    n_edges = c["train"] + c["valid"] + c["test"]
    pop = 1.0 / np.arange(1, c["n_items"] + 1) ** 0.8  # Zipf-like item popularity
    pop = rng.permutation(pop / pop.sum())
    keys = np.unique(np.arange(c["n_users"]) * c["n_items"] + rng.choice(c["n_items"], c["n_users"], p=pop))
    while len(keys) < n_edges:  # top up with random (user, item) pairs, users also skewed
        u = (rng.pareto(2.0, n_edges) * c["n_users"] / 4).astype(np.int64) % c["n_users"]
        keys = np.unique(np.concatenate([keys, u * c["n_items"] + rng.choice(c["n_items"], n_edges, p=pop)]))
    first = np.unique(keys // c["n_items"], return_index=True)[1]  # one edge per user stays in training
    rest = rng.permutation(np.setdiff1d(np.arange(len(keys)), first))[: n_edges - len(first)]
    cut = np.cumsum([c["train"] - len(first), c["valid"]])
    parts = [np.concatenate([keys[first], keys[rest[: cut[0]]]]), keys[rest[cut[0]: cut[1]]], keys[rest[cut[1]:]]]
    splits = [Split(k // c["n_items"], k % c["n_items"]) for k in parts]
    return Dataset("clothing-like", c["n_users"], c["n_items"], *splits)


def write_inter(ds, folder: str) -> str:
    """Write ``ds`` as ``<folder>/<name>.inter`` (MMRec TSV: userID, itemID, x_label 0/1/2), the folder's name
    being the data set's, so that ``python -m r2mr train --dataset <name> --data-dir <parent>`` trains on it
    (with ``--set content=random``: no feature files). Ids are re-indexed to 0..n-1 over the ids that occur
    (the loader's rule; the generated Clothing graph leaves ~2% of its items without an edge). Refuses to
    overwrite an existing file."""
    from pathlib import Path

    import pandas as pd

    from r2mr.core.atomic_io import atomic_path  # this checkout only (the GPU suite), not an older --repo

    path = Path(folder) / f"{Path(folder).name}.inter"
    if path.exists():
        raise FileExistsError(f"{path}: exists; fix: remove it or choose another folder")
    df = pd.concat([pd.DataFrame({"userID": s.users, "itemID": s.items, "x_label": label})
                    for label, s in enumerate((ds.train, ds.valid, ds.test))])
    for col in ("userID", "itemID"):
        df[col] = np.unique(df[col].to_numpy(), return_inverse=True)[1]
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    return str(path)


def load_scale(scale: str, data_dir: str | None):
    """``clothing``: the generated graph; any other name: the real interaction graph under ``data_dir``."""
    from r2mr.data import load_dataset

    return clothing_like() if scale == "clothing" else load_dataset(scale, data_dir, features=False)


def trainer_api() -> tuple:
    """(make_configs, Trainer, seed_everything) of whichever checkout is first on the import path: this one, or
    an older one (``--repo``) from before the layered packages."""
    try:
        from r2mr.runs.experiment import make_configs
        from r2mr.training.runtime import seed_everything
        from r2mr.training.trainer import Trainer
    except ImportError:
        from r2mr.experiment import make_configs
        from r2mr.train import Trainer, seed_everything
    return make_configs, Trainer, seed_everything


def r2mr_overrides(size: str, widths: str = "text:384,image:4096") -> dict:
    """R2MR overrides with random features of the real widths at ``size`` (quick | full), for either
    spelling of the content-control field (``content``, formerly ``features``)."""
    import dataclasses

    try:
        from r2mr.models.r2mr.model import R2MRConfig
        from r2mr.runs.plan import QUICK  # this checkout
    except ImportError:  # an older checkout (--repo), before the layered packages
        from r2mr.models.r2mr import R2MRConfig
        try:
            from r2mr.plan import QUICK
        except ImportError:  # before r2mr/report.py was split
            from r2mr.report import QUICK

    names = {f.name for f in dataclasses.fields(R2MRConfig)}
    key = "content" if "content" in names else "features"
    out = {key: "random", "random_widths": widths}
    if size == "quick":
        out.update({k: v for k, v in QUICK["r2mr"].items() if k != "max_epochs"})
    return out


if __name__ == "__main__":
    import sys

    print(write_inter(clothing_like(), sys.argv[1]))
