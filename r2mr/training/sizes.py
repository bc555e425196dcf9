"""Sizes checked against the data and the machine before any memory is spent (called by
:func:`r2mr.runs.experiment.train` once the configs are resolved and the data set is loaded, before the model is
built).

* Against the data: every ``k`` of ``topk`` and ``knn_k`` must be at most the number of items, and an explicit
  R2MR ``dim`` at most the number of items (PCA cannot give more components than samples; ``dim=0`` picks a
  width that fits, :func:`r2mr.models.r2mr.features.common_dim`).
* Against the machine: the bytes of the model's parameters (with their gradients and two Adam moments: x4) and
  of its largest activations are estimated from the config and the data's shape; over the memory limit, the
  key that costs the most is named with the estimate and the fix. The limit is ``$R2MR_MEMORY_LIMIT`` (bytes,
  or with a K/M/G/T suffix), else :data:`MEMORY_FRACTION` of the machine's memory (or of ``ulimit -v``).

The estimate is coarse on purpose (within a small factor): it catches a width of 100000 typed for 1000, not a
model 20 % too large for the machine.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import resource
from typing import Any

from ..core.errors import ConfigError

MEMORY_ENV = "R2MR_MEMORY_LIMIT"
MEMORY_FRACTION = 0.8
FLOAT = 4  # bytes of a float32
ADAM = 4  # a trained parameter: value, gradient and two moments
SUFFIX = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def fmt_bytes(n: float) -> str:
    for unit in ("TB", "GB", "MB", "KB"):
        scale = SUFFIX[unit[0]]
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def memory_limit() -> int:
    """Bytes a run may plan to use: ``$R2MR_MEMORY_LIMIT``, else a fraction of physical memory (or of the address
    space limit, if lower)."""
    raw = os.environ.get(MEMORY_ENV, "").strip().upper().removesuffix("B")
    if raw:
        unit = raw[-1] if raw[-1] in SUFFIX else ""
        number = raw[:-1] if unit else raw
        try:
            value = float(number) * SUFFIX[unit]
        except ValueError:
            value = -1.0
        if not value > 0:
            raise ConfigError(f"environment variable {MEMORY_ENV}: {raw!r} is not allowed (allowed: a byte count, "
                              f"optionally with K, M, G or T, e.g. 64G); fix: set it so, or unset it")
        return int(value)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft not in (resource.RLIM_INFINITY, -1):
        total = min(total, soft)
    return int(total * MEMORY_FRACTION)


def check_against_data(cfgs: list[Any], n_items: int, dataset: str) -> None:
    """``topk``, ``knn_k`` and an explicit ``dim`` at most the number of items (one-line ConfigError)."""
    for cfg in cfgs:
        topk = tuple(getattr(cfg, "topk", ()) or ())
        if topk and max(topk) > n_items:
            raise ConfigError(f"config key 'topk': {list(topk)} asks for more items than the {n_items} of data set "
                              f"'{dataset}'; fix: set topk to values <= {n_items} that include 10 and 20 (e.g. "
                              f"--set topk=10,20)")
        for key in ("knn_k", "dim"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > n_items:
                raise ConfigError(f"config key '{key}': {value} is more than the {n_items} items of data set "
                                  f"'{dataset}'; fix: set {key} <= {n_items}"
                                  + (" (or dim=0: automatic)" if key == "dim" else ""))


def _mlp(widths: list[int]) -> int:
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def estimate(mcfg: Any, tcfg: Any, n_users: int, n_items: int, feature_widths: dict[str, int]) -> dict[str, float]:
    """Estimated bytes per config key that drives them (parameters x :data:`ADAM`, plus activations)."""
    rows = n_users + n_items
    widest = max(feature_widths.values(), default=0)
    cost: dict[str, float] = {}
    width = getattr(mcfg, "embedding_size", None) or getattr(mcfg, "dim", None) or min(widest or 384, 384)
    key = "embedding_size" if hasattr(mcfg, "embedding_size") else "dim"
    cost[key] = rows * width * FLOAT * (ADAM + 2 * getattr(mcfg, "n_layers", 1) + 2)  # tables and propagation
    if hasattr(mcfg, "feat_embed_dim"):
        cost["feat_embed_dim"] = (widest * mcfg.feat_embed_dim * ADAM + n_items * mcfg.feat_embed_dim * 4) * FLOAT
    if hasattr(mcfg, "knn_k"):
        cost["knn_k"] = n_items * mcfg.knn_k * 3 * 8 * 4  # kNN edge lists (index pairs and weights), a few copies
    if hasattr(mcfg, "rw_hidden"):
        cost.update(_rewriter(mcfg, width, n_items, len(feature_widths) or 2))
    cost["eval_batch_size"] = min(tcfg.eval_batch_size, n_users) * n_items * FLOAT * 3  # scores, mask, top-k
    return cost


def _rewriter(cfg: Any, dim: int, n_items: int, modalities: int) -> dict[str, float]:
    pairs = modalities * (modalities - 1)
    hidden, latent = list(cfg.rw_hidden), cfg.rw_latent
    enc = [dim + cfg.rw_prompt_dim, *hidden, latent]
    dec = [latent + cfg.rw_prompt_dim, *reversed(hidden), dim]
    rows = max(cfg.rw_batch, n_items)  # a rewrite round passes every item through the MLPs
    layers = _mlp(enc[:-1]) + _mlp(dec[1:]) + _mlp([*cfg.rw_disc_hidden])
    pieces = latent // max(cfg.rw_code_dim, 1)  # codebook look-ups per row, against every entry (per rw_batch)
    return {"rw_hidden": (layers * ADAM + rows * sum(hidden) * 2) * FLOAT,
            "rw_latent": ((enc[-2] + dec[1]) * latent * ADAM + rows * latent * 4) * FLOAT,
            "rw_codebook": (cfg.rw_codebook * cfg.rw_code_dim * ADAM + cfg.rw_batch * pieces * cfg.rw_codebook * 2)
            * FLOAT,
            "rw_prompt_dim": pairs * cfg.rw_prompt_dim * (ADAM + rows) * FLOAT}


def check_memory(mcfg: Any, tcfg: Any, n_users: int, n_items: int, feature_widths: dict[str, int],
                 dataset: str) -> None:
    """One-line ConfigError naming the key to lower when the estimate is over :func:`memory_limit`."""
    cost = estimate(mcfg, tcfg, n_users, n_items, feature_widths)
    total, limit = sum(cost.values()), memory_limit()
    if total <= limit:
        return
    key, saved = culprit(mcfg, tcfg, n_users, n_items, feature_widths, total)
    value = getattr(mcfg, key, getattr(tcfg, key, None))
    value = list(value) if isinstance(value, tuple) else value
    raise ConfigError(f"config key '{key}': {value} needs about {fmt_bytes(saved)} on data set '{dataset}' "
                      f"({n_users} users, {n_items} items; about {fmt_bytes(total)} in all), over the memory limit "
                      f"of {fmt_bytes(limit)}; fix: lower {key}, or raise the limit with {MEMORY_ENV} (e.g. "
                      f"{MEMORY_ENV}={int(total * 1.25 / 2**30) + 1}G)")


def culprit(mcfg: Any, tcfg: Any, n_users: int, n_items: int, feature_widths: dict[str, int],
            total: float) -> tuple[str, float]:
    """(the changed key whose default value saves the most bytes, the bytes saved); where no changed key saves
    anything (the data set is large for the defaults), the key of the largest estimate and that estimate."""
    best, saved = "", 0.0
    for cfg, other in ((mcfg, tcfg), (tcfg, mcfg)):
        default = type(cfg)()
        for f in dataclasses.fields(cfg):
            if getattr(cfg, f.name) == getattr(default, f.name):
                continue
            trial = copy.copy(cfg)
            object.__setattr__(trial, f.name, getattr(default, f.name))  # no validation: one key at a time
            pair = (trial, other) if cfg is mcfg else (other, trial)
            left = sum(estimate(*pair, n_users, n_items, feature_widths).values())
            if total - left > saved:
                best, saved = f.name, total - left
    if best:
        return best, saved
    cost = estimate(mcfg, tcfg, n_users, n_items, feature_widths)
    key = max(cost, key=cost.get)
    return key, cost[key]


def check(mcfg: Any, tcfg: Any, ds: Any) -> None:
    """Both checks for a resolved model and train config on the loaded data set ``ds``."""
    check_against_data([mcfg, tcfg], ds.n_items, ds.name)
    widths = {m: int(f.shape[1]) for m, f in ds.features.items()}
    check_memory(mcfg, tcfg, ds.n_users, ds.n_items, widths, ds.name)
