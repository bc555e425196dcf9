"""Full-ranking evaluation with MMRec's metric definitions, vectorised and batched on the model's device.

For a user u with held-out set T_u and top-K list hits h_1..h_K (1 if the r-th item is in T_u):
* Recall@K    = sum_r h_r / |T_u|                 (not capped at K)
* Precision@K = sum_r h_r / K
* NDCG@K      = sum_r h_r / log2(r + 1)  /  sum_{r <= min(|T_u|, K)} 1 / log2(r + 1)
* MAP@K       = sum_r h_r * Precision@r  /  min(|T_u|, K)
Each is averaged over the users that have at least one held-out item in the split. The user's training
items are masked (never ranked); validation items are not masked when evaluating test.

Ranking and ties: the top-K list is ``torch.topk``'s (largest first, NaN before every number); items with equal
scores come in the order torch.topk gives them on this device (on a CPU where K * 64 <= items: the order of its
heap-based partial sort, which :func:`r2mr.data.kernels.topk_indices` reproduces step by step, reading item-major
scores in place).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..core.names import METRIC_NAMES, PER_USER_METRICS
from ..data import Dataset
from ..data.graph import csr_gather
from ..data.kernels import topk_indices
from ..data.sampler import pair_keys
from .user_metrics import compiled_applies, held_out_hits, rank_metrics_compiled, rank_tables

METRICS = METRIC_NAMES
ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # users (B,) -> scores (B, n_items)
PER_USER = PER_USER_METRICS
PerUser = dict[str, dict[str, torch.Tensor]]  # {split: {"users": (N,), metric: (N,)}} on the CPU


def rank_metrics(hits: torch.Tensor, n_truth: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-user metrics from a (B, maxK) 0/1 hit matrix and held-out counts (B,); values (B,) each. On the CPU
    with numba, computed by :func:`r2mr.evaluation.user_metrics.rank_metrics_compiled` (the same bits)."""
    if compiled_applies(hits, n_truth) and hits.dtype == torch.bool:
        return rank_metrics_compiled(hits, n_truth, ks)
    hits = hits.double()
    ranks, discount, idcg_table = rank_tables(hits.shape[1], hits.device)  # (maxK,) each
    cum_hits = hits.cumsum(1)  # (B, maxK)
    dcg = (hits * discount).cumsum(1)  # (B, maxK)
    ap = (hits * cum_hits / ranks).cumsum(1)  # (B, maxK)
    n = n_truth.double()
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        cap = torch.clamp(n, max=k)  # (B,)
        out[f"recall@{k}"] = cum_hits[:, k - 1] / n
        out[f"precision@{k}"] = cum_hits[:, k - 1] / k
        out[f"ndcg@{k}"] = dcg[:, k - 1] / idcg_table[(cap - 1).long()]
        out[f"map@{k}"] = ap[:, k - 1] / cap
    return out


class Evaluator:
    """Holds one data set's masks and held-out sets on ``device``; call it with a score function.

    Valid and test mask the same (training) items, so one ranking per user serves both splits.
    """

    def __init__(self, ds: Dataset, ks: Sequence[int] = (10, 20, 50), batch_size: int = 4096,
                 device: torch.device | str = "cpu") -> None:
        self.ks, self.batch_size, self.device, self.n_items = tuple(ks), batch_size, torch.device(device), ds.n_items
        train = ds.train_csr()
        self.indptr = torch.from_numpy(train.indptr.astype(np.int64)).to(self.device)
        self.indices = torch.from_numpy(train.indices.astype(np.int64)).to(self.device)
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # {split: (sorted pair keys, counts (U,))}
        self.starts: dict[str, torch.Tensor] = {}  # {split: (U + 1,) where each user's keys start}
        for name in ("valid", "test"):
            sp = ds.split(name)
            keys = pair_keys(torch.from_numpy(sp.users.copy()), torch.from_numpy(sp.items.copy()), ds.n_items)
            counts = torch.from_numpy(np.bincount(sp.users, minlength=ds.n_users)).to(self.device)
            self.splits[name] = (keys.sort().values.to(self.device), counts)
            self.starts[name] = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # each user's run of keys

    def users(self, split: str) -> torch.Tensor:
        """Users with at least one held-out item in ``split`` (sorted)."""
        return torch.nonzero(self.splits[split][1]).squeeze(1)

    def top_items(self, score_fn: ScoreFn, users: torch.Tensor) -> torch.Tensor:
        """Top-maxK item ids (N, maxK) per user, training items masked, in batches."""
        maxk, out = max(self.ks), []
        for s in range(0, len(users), self.batch_size):
            u = users[s:s + self.batch_size]
            scores = score_fn(u).to(self.device, torch.float32)  # (B, n_items), a fresh tensor (masked in place)
            rows, cols = csr_gather(self.indptr, self.indices, u)
            scores[rows, cols] = -torch.inf
            out.append(topk_indices(scores, maxk))  # (B, maxK): scores.topk(maxK).indices, ties in its order
        return torch.cat(out) if out else torch.empty(0, maxk, dtype=torch.long, device=self.device)

    def split_metrics(self, users: torch.Tensor, top: torch.Tensor, split: str) -> dict[str, torch.Tensor]:
        """Per-user metrics (N,) for ``users`` (all with held-out items in ``split``) from their top lists."""
        keys, counts = self.splits[split]
        hits = held_out_hits(keys, self.starts[split], users, top, self.n_items)  # (N, maxK) bool
        return rank_metrics(hits, counts[users], self.ks)

    def evaluate(self, score_fn: ScoreFn, splits: Sequence[str] = ("valid", "test")) -> dict[str, dict[str, float]]:
        """``{split: {"recall@20": ..., ...}}``: means over each split's users, one ranking for all splits."""
        return self.evaluate_full(score_fn, splits, per_user=())[0]

    def evaluate_full(self, score_fn: ScoreFn, splits: Sequence[str] = ("valid", "test"),
                      per_user: Sequence[str] = PER_USER) -> tuple[dict[str, dict[str, float]], PerUser]:
        """(means as :meth:`evaluate`, per-user values): ``{split: {"users": (N,) int64, metric: (N,) float64}}``
        for the metrics named in ``per_user``, aligned with the split's users (sorted ids). Same ranking, so
        the per-user values come at no extra cost; the means are bit-identical to :meth:`evaluate`."""
        per_split = {s: self.users(s) for s in splits}
        union = torch.unique(torch.cat(list(per_split.values())))
        top = self.top_items(score_fn, union)
        out, users_out = {}, {}
        for s, users in per_split.items():
            rows = torch.searchsorted(union, users)
            metrics = self.split_metrics(users, top[rows], s)
            out[s] = {k: float(v.mean()) if len(v) else float("nan")
                      for k, v in sorted(metrics.items(), key=lambda kv: _metric_order(kv[0]))}
            if per_user:
                users_out[s] = {"users": users.cpu(), **{k: metrics[k].cpu() for k in per_user if k in metrics}}
        return out, users_out

    def __call__(self, score_fn: ScoreFn, split: str) -> dict[str, float]:
        """Mean of every metric over the split's users, e.g. ``{"recall@20": 0.0754, ...}``."""
        return self.evaluate(score_fn, (split,))[split]


def _metric_order(key: str) -> tuple[int, int]:
    name, k = key.split("@")
    return METRICS.index(name), int(k)


# ---- per-user metrics of the selected epochs on disk ---------------------------------------------------------

def save_per_user(path: str | Path, selected: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``{rule: {"epoch": int, split: {"users": (N,), metric: (N,)}}}`` (tensors or arrays) as one
    ``.npz``: keys ``<split>.users`` (shared by the rules), ``<rule>.epoch`` and ``<rule>.<split>.<metric>``."""
    from ..core.atomic_io import atomic_path

    arrays: dict[str, np.ndarray] = {}
    for rule, entry in selected.items():
        arrays[f"{rule}.epoch"] = np.asarray(entry["epoch"], dtype=np.int64)
        for split, values in entry.items():
            if split == "epoch":
                continue
            for key, v in values.items():
                v = np.asarray(v.numpy() if isinstance(v, torch.Tensor) else v)
                arrays[f"{split}.users" if key == "users" else f"{rule}.{split}.{key}"] = v
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)


def load_per_user(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read :func:`save_per_user`'s file back: ``{rule: {"epoch": int, split: {"users": ..., metric: ...}}}``."""
    out: dict[str, dict[str, Any]] = {}
    with np.load(path, allow_pickle=False) as z:
        users = {k.split(".")[0]: z[k] for k in z.files if k.endswith(".users")}
        for key in z.files:
            parts = key.split(".", 2)
            if len(parts) == 2 and parts[1] == "epoch":
                out.setdefault(parts[0], {})["epoch"] = int(z[key])
            elif len(parts) == 3:
                rule, split, metric = parts
                entry = out.setdefault(rule, {}).setdefault(split, {"users": users[split]})
                entry[metric] = z[key]
    return out
