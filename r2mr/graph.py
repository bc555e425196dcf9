"""Graphs shared by every model: normalised user-item adjacencies and item-item kNN graphs.

* ``ui_norm``: R_hat = D_U^{-1/2} R D_I^{-1/2} (degrees + eps), as (n_users, n_items) and its transpose.
* ``sym_adj``: the (U+I, U+I) bipartite adjacency [[0, R], [R^T, 0]] with the same normalisation.
* ``knn_graph``: each item's top-k cosine neighbours (self included), binary ("kNN-B") or weighted
  ("kNN-W"), normalised as deg_i^{-1/2} S_ij deg_j^{-1/2} with row sums as degrees.
* ``cached_knn``: the same, written once under a cache folder, keyed by a hash of the features and k.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch


def to_torch(m: sp.spmatrix, layout: str = "csr") -> torch.Tensor:
    """scipy sparse -> torch sparse (float32), CSR by default (fast spmm with autograd on CPU and CUDA)."""
    coo = m.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        t = torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data.astype(np.float32)), coo.shape).coalesce()
        return t.to_sparse_csr() if layout == "csr" else t


class _SpMM(torch.autograd.Function):
    """y = A x with the gradient A^T g computed from a stored transpose (no transposition per call)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, at: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.at = at
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, torch.sparse.mm(ctx.at, g)


def spmm(a: torch.Tensor, x: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse (n, m) @ dense (m, d) -> (n, d), differentiable in ``x``; ``at`` = A^T (default: A is symmetric)."""
    return _SpMM.apply(a, a if at is None else at, x)


def degree_norm_values(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                       eps: float = 1e-7) -> np.ndarray:
    """1/sqrt((d_u + eps)(d_i + eps)) per edge, with training degrees d."""
    du = np.bincount(users, minlength=n_users).astype(np.float64) + eps
    di = np.bincount(items, minlength=n_items).astype(np.float64) + eps
    return (du[users] ** -0.5) * (di[items] ** -0.5)


def ui_norm(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
            eps: float = 1e-7) -> sp.csr_matrix:
    """R_hat, shape (n_users, n_items)."""
    vals = degree_norm_values(users, items, n_users, n_items, eps)
    return sp.csr_matrix((vals, (users, items)), shape=(n_users, n_items))


def sym_adj(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
            eps: float = 1e-7) -> sp.csr_matrix:
    """[[0, R_hat], [R_hat^T, 0]], shape (n_users + n_items, n_users + n_items); no self-loops."""
    r = ui_norm(users, items, n_users, n_items, eps)
    return sp.bmat([[None, r], [r.T, None]], format="csr")


def topk_cosine(x: torch.Tensor, k: int, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's top-k cosine similarities and column indices, shapes (n, k); chunked (no n x n at once)."""
    x = torch.nn.functional.normalize(x.float(), dim=1)  # (n, d)
    vals, idx = [], []
    for start in range(0, x.shape[0], chunk):
        sim = x[start:start + chunk] @ x.T  # (c, n)
        v, i = sim.topk(k, dim=1)
        vals.append(v)
        idx.append(i)
    return torch.cat(vals), torch.cat(idx)


def knn_graph(features: np.ndarray | torch.Tensor, k: int, weighted: bool = False) -> sp.csr_matrix:
    """Normalised item-item kNN graph (n_items, n_items); binary values 1 before normalisation unless weighted."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    vals, idx = topk_cosine(x, k)  # (n, k)
    n = x.shape[0]
    data = vals.numpy().astype(np.float64) if weighted else np.ones(n * k)
    m = sp.csr_matrix((data.ravel(), (np.repeat(np.arange(n), k), idx.numpy().ravel())), shape=(n, n))
    deg = np.asarray(m.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv = np.where(deg > 0, deg ** -0.5, 0.0)
    return (sp.diags(inv) @ m @ sp.diags(inv)).tocsr()


def features_key(features: np.ndarray) -> str:
    """Short content hash of a feature matrix (shape, dtype and bytes)."""
    h = hashlib.sha1(f"{features.shape}{features.dtype}".encode())
    h.update(np.ascontiguousarray(features).tobytes())
    return h.hexdigest()[:16]


def cached_knn(features: np.ndarray, k: int, weighted: bool, cache_dir: str | Path | None) -> sp.csr_matrix:
    """``knn_graph`` read from / written to ``cache_dir/knn-<hash>-k<k>-<w|b>.npz`` (atomic write)."""
    if cache_dir is None:
        return knn_graph(features, k, weighted)
    path = Path(cache_dir) / f"knn-{features_key(features)}-k{k}-{'w' if weighted else 'b'}.npz"
    if path.is_file():
        return sp.load_npz(path).tocsr()
    g = knn_graph(features, k, weighted)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    os.close(fd)
    sp.save_npz(tmp, g)
    os.replace(tmp, path)
    return g
