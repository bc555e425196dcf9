"""One call from names to a result: resolve configs, seed, build the model, train (through the result store).

Used by the CLI and the notebooks. A run lives in the store (:mod:`r2mr.runs.store`:
``<runs>/<dataset>/<model>-<key>-seed<N>/``, or the given ``run_dir``); its key hashes the model, the resolved
configs, the data fingerprint, the seed and the model's maths version (not the device), so a finished run is
read back (validated), a killed one resumes and two processes never train the same run twice.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..core import config as cfgmod
from ..core.errors import ConfigError, DataError
from ..core.paths import data_root, data_root_source
from ..data import Dataset, load_dataset
from ..data.corrupt import base_name
from ..data.mmrec import how_to_get
from ..models import get_model
from ..training import sizes
from ..training.config import TrainConfig
from ..training.runtime import resolve_device, seed_everything
from ..training.trainer import Trainer
from . import archive, store


def make_configs(model: str, overrides: dict[str, Any] | None = None, seed: int | None = None,
                 max_epochs: int | None = None, dataset: str | None = None) -> tuple[type, Any, TrainConfig]:
    """(model class, model config, train config): class defaults, then the model's train defaults, then its
    published values for ``dataset`` (if any), then ``overrides``."""
    cls = get_model(model)
    mcfg, tcfg = cls.Config(), TrainConfig(**cls.train_defaults)
    cfgmod.apply([mcfg, tcfg], dict(cls.dataset_defaults.get(base_name(dataset or ""), {})))  # a variant: its base's
    cfgmod.apply([mcfg, tcfg], dict(overrides or {}))
    explicit = {k: v for k, v in (("seed", seed), ("max_epochs", max_epochs)) if v is not None}
    cfgmod.apply([tcfg], explicit)  # checked against r2mr/core/config_rules.py like every other key
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


@dataclass
class Job:
    """A resolved request: model class and configs, the data, the device and where the run lives."""

    cls: type
    mcfg: Any
    tcfg: TrainConfig
    ds: Dataset
    device: torch.device
    request: store.Request
    folder: Path


def _split_dataset(dataset: str, data_dir: str | Path | None) -> tuple[str, str | Path | None]:
    """``--dataset DIR/NAME`` means ``--data-dir DIR --dataset NAME`` (outputs never go into the data folder)."""
    if "/" not in dataset and os.sep not in dataset:
        return dataset, data_dir
    path = Path(dataset).expanduser()
    if data_dir is not None:
        raise ConfigError(f"--dataset {dataset} is a path and --data-dir {data_dir} was given too; fix: give "
                          f"either --dataset DIR/NAME or --data-dir DIR --dataset NAME")
    return store.check_name(path.name), path.parent


def _job(model: str, dataset: str | Dataset, data_dir: str | Path | None, overrides: dict[str, Any] | None,
         device: str, seed: int | None, max_epochs: int | None, run_dir: str | Path | None) -> Job:
    if not isinstance(dataset, Dataset):
        dataset, data_dir = _split_dataset(dataset, data_dir)
    name = store.check_name(dataset.name if isinstance(dataset, Dataset) else dataset)
    cls, mcfg, tcfg = make_configs(model, overrides, seed, max_epochs, dataset=name)
    dev = resolve_device(device)
    if isinstance(dataset, Dataset):
        ds = dataset
    else:
        ds = load_dataset(dataset, data_root(data_dir), features=cls.needs_features,
                          root_source=data_root_source(data_dir))
    req = store.make_request(model, name, tcfg.seed, cfgmod.to_dict(tcfg, mcfg), fingerprint(ds), cls.maths_version)
    return Job(cls, mcfg, tcfg, ds, dev, req, Path(run_dir) if run_dir else req.folder())


def run_folder(model: str, dataset: str | Dataset, *, data_dir: str | Path | None = None,
               overrides: dict[str, Any] | None = None, device: str = "auto", seed: int | None = None,
               max_epochs: int | None = None, strict: bool = False) -> Path:
    """The folder where this run lives in the store (it may not exist yet); ``strict`` does not change it."""
    return _job(model, dataset, data_dir, overrides, device, seed, max_epochs, None).folder


def find(model: str, dataset: str | Dataset, *, data_dir: str | Path | None = None,
         overrides: dict[str, Any] | None = None, device: str = "auto", seed: int | None = None,
         max_epochs: int | None = None, strict: bool = False) -> dict[str, Any] | None:
    """The validated stored result (with ``"cached": True``) or None (absent, training now, or with ``strict``
    made on another device type or torch version); never trains nor writes. A run found only in the evidence
    archive (:mod:`r2mr.runs.archive`) is returned with ``"source": "archive"`` and no files. A corrupt entry is a
    ConfigError."""
    return _lookup(_job(model, dataset, data_dir, overrides, device, seed, max_epochs, None), strict)


def _lookup(job: Job, strict: bool) -> dict[str, Any] | None:
    """:func:`find` for a built job (its data set already loaded)."""
    rec = None
    if job.folder.is_dir():
        with store.locked(job.folder, wait=False) as free:
            rec = store.read(job.folder, job.request) if free else None
    if rec is None and (entry := archive.lookup(job.request)) is not None:
        rec = {**entry.doc["record"], "cached": True, "source": "archive"}  # restored when a reader trains it
    if rec is not None and strict and not store.same_platform(rec, job.device.type, torch.__version__):
        return None
    return rec


def train(model: str, dataset: str | Dataset, *, data_dir: str | Path | None = None,
          overrides: dict[str, Any] | None = None, device: str = "auto", seed: int | None = None,
          max_epochs: int | None = None, run_dir: str | Path | None = None, resume: bool = True,
          reuse: bool = True, progress: bool = True, strict: bool = False,
          on_epoch: Callable[[dict[str, Any]], None] | None = None,
          train_missing: bool = True) -> dict[str, Any] | None:
    """Train ``model`` on ``dataset`` and return the result dict (see :meth:`Trainer.result` and
    :mod:`r2mr.runs.store`), with ``run_dir`` (the run folder) and ``cached``.

    ``reuse``: return a finished run's validated record (``"cached": True``) instead of training again (with
    ``strict``, only one made on the same device type and torch version); a run absent from the store but
    present in the evidence archive is restored from it (``"source": "archive"``); ``resume``: continue from the run
    folder's checkpoint (``resume=False`` is ``--restart``: recompute, replacing a corrupt record). A second
    process asking for the same run waits for the first and reads its record. ``on_epoch(entry)`` is called after
    each epoch's checkpoint (progress, or fault injection in tests: a hook, no patched class).
    ``train_missing`` False (``run-all --no-train``): None instead of training a run that neither the store nor
    the archive holds; nothing is written for it.
    """
    job = _job(model, dataset, data_dir, overrides, device, seed, max_epochs, run_dir)
    if not train_missing and _lookup(job, strict) is None:
        return None
    cls, mcfg, ds = job.cls, job.mcfg, job.ds
    if cls.requires_features(mcfg) and not ds.features:
        fix = how_to_get(ds.name, ds.path, features=True)
        raise DataError(f"{ds.path}: model '{model}' needs item features (*_feat.npy) but the folder has none; "
                        f"fix: {fix}")
    sizes.check(mcfg, job.tcfg, ds)  # k's and widths against the data, bytes against the memory limit
    store.make_folder(job.folder)
    with store.locked(job.folder):
        store.claim(job.folder, job.request, restart=not resume)
        rec = store.read(job.folder, job.request) if reuse and resume else None
        if rec is None and reuse and resume and (entry := archive.lookup(job.request)) is not None:
            rec = archive.restore(entry, job.folder)  # the archived run becomes a stored one: never retrained
        if rec is not None and (not strict or store.same_platform(rec, job.device.type, torch.__version__)):
            return rec
        fresh = rec is not None  # strict: a record from another device or torch version is absent: start over
        t0 = time.perf_counter()
        seed_everything(job.tcfg.seed)
        cache = store.runs_root() / ds.name / "cache"
        net = cls(ds, mcfg, cache_dir=cache) if _wants_cache_dir(cls) else cls(ds, mcfg)
        meta = {"model": job.request.model, "dataset": ds.name,
                **({"variant": mcfg.variant} if hasattr(mcfg, "variant") else {})}
        trainer = Trainer(net, ds, job.tcfg, job.device, job.folder, progress=progress, meta=meta)
        res = trainer.fit(resume=resume and not fresh, on_epoch=on_epoch)
        return store.write(job.folder, job.request, res, time.perf_counter() - t0)


def _wants_cache_dir(cls: type) -> bool:
    import inspect

    return "cache_dir" in inspect.signature(cls.__init__).parameters
