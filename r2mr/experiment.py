"""One call from names to a result: resolve configs, seed, build the model, train (with caching and resume).

Used by the CLI and the notebooks. A run lives in ``runs/<dataset>/<model>-<key>-seed<N>/`` (or the given
``run_dir``): its key hashes the resolved configs, the data fingerprint and the device type, so a finished
run is reused and a killed one resumes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import config as cfgmod
from .data import Dataset, load_dataset
from .models import get_model
from .paths import RUNS, data_root, data_root_source
from .train import TrainConfig, Trainer, resolve_device, seed_everything


def make_configs(model: str, overrides: dict[str, Any] | None = None, seed: int | None = None,
                 max_epochs: int | None = None, dataset: str | None = None) -> tuple[type, Any, TrainConfig]:
    """(model class, model config, train config): class defaults, then the model's train defaults, then its
    published values for ``dataset`` (if any), then ``overrides``."""
    cls = get_model(model)
    mcfg, tcfg = cls.Config(), TrainConfig(**cls.train_defaults)
    cfgmod.apply([mcfg, tcfg], dict(cls.dataset_defaults.get(dataset or "", {})))
    cfgmod.apply([mcfg, tcfg], dict(overrides or {}))
    if seed is not None:
        tcfg.seed = seed
    if max_epochs is not None:
        tcfg.max_epochs = max_epochs
    return cls, mcfg, tcfg


def fingerprint(ds: Dataset) -> str:
    """Short hash of a data set's splits and feature matrices."""
    h = hashlib.sha1(f"{ds.name}:{ds.n_users}:{ds.n_items}".encode())
    for s in ("train", "valid", "test"):
        sp = ds.split(s)
        h.update(np.ascontiguousarray(sp.users).tobytes())
        h.update(np.ascontiguousarray(sp.items).tobytes())
    for m, f in ds.features.items():
        h.update(f"{m}{f.shape}".encode())
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()[:12]


def run_key(model: str, ds: Dataset, mcfg: Any, tcfg: TrainConfig, device: torch.device) -> str:
    blob = json.dumps({"model": model, "data": fingerprint(ds), "device": device.type,
                       **cfgmod.to_dict(tcfg, mcfg)}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def train(model: str, dataset: str | Dataset, *, data_dir: str | Path | None = None,
          overrides: dict[str, Any] | None = None, device: str = "auto", seed: int | None = None,
          max_epochs: int | None = None, run_dir: str | Path | None = None, resume: bool = True,
          reuse: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` and return the result dict (see :meth:`Trainer.result`).

    ``reuse``: return a finished run's saved result (marked ``"cached": True``) instead of training again;
    ``resume``: continue from the run directory's checkpoint.
    """
    name = dataset.name if isinstance(dataset, Dataset) else dataset
    cls, mcfg, tcfg = make_configs(model, overrides, seed, max_epochs, dataset=name)
    dev = resolve_device(device)
    if isinstance(dataset, Dataset):
        ds = dataset
    else:
        ds = load_dataset(dataset, data_root(data_dir), features=cls.needs_features,
                          root_source=data_root_source(data_dir))
    if cls.requires_features(mcfg) and not ds.features:
        from .errors import DataError

        raise DataError(f"{ds.path}: model '{model}' needs item features (*_feat.npy) but the folder has none; "
                        f"fix: run `python -m r2mr data download {ds.name}`")
    run_dir = Path(run_dir) if run_dir else RUNS / ds.name / f"{model}-{run_key(model, ds, mcfg, tcfg, dev)}-seed{tcfg.seed}"
    done = run_dir / "result.json"
    if reuse and resume and done.is_file():
        return {**json.loads(done.read_text()), "cached": True}
    seed_everything(tcfg.seed)
    net = cls(ds, mcfg) if not _wants_cache_dir(cls) else cls(ds, mcfg, cache_dir=RUNS / ds.name / "cache")
    meta = {"model": model, "dataset": ds.name, **({"variant": mcfg.variant} if hasattr(mcfg, "variant") else {})}
    trainer = Trainer(net, ds, tcfg, dev, run_dir, progress=progress, meta=meta)
    return trainer.fit(resume=resume)


def _wants_cache_dir(cls: type) -> bool:
    import inspect

    return "cache_dir" in inspect.signature(cls.__init__).parameters


# interim: replaced by the run store
def find(model: str, dataset: str | Dataset, *, data_dir: str | Path | None = None,
         overrides: dict[str, Any] | None = None, device: str = "auto", seed: int | None = None,
         max_epochs: int | None = None, strict: bool = False) -> dict[str, Any] | None:
    """The stored result of this run (marked ``"cached": True``) or ``None``; never trains."""
    name = dataset.name if isinstance(dataset, Dataset) else dataset
    cls, mcfg, tcfg = make_configs(model, overrides, seed, max_epochs, dataset=name)
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(
        dataset, data_root(data_dir), features=cls.needs_features, root_source=data_root_source(data_dir))
    done = RUNS / ds.name / f"{model}-{run_key(model, ds, mcfg, tcfg, resolve_device(device))}-seed{tcfg.seed}" / "result.json"
    return {**json.loads(done.read_text()), "cached": True} if done.is_file() else None
