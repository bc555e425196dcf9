"""Graphs shared by every model: normalised user-item adjacencies and item-item kNN graphs.

* ``ui_norm``: R_hat = D_U^{-1/2} R D_I^{-1/2} (degrees + eps), as (n_users, n_items) and its transpose.
* ``sym_adj``: the (U+I, U+I) bipartite adjacency [[0, R], [R^T, 0]] with the same normalisation.
* ``knn_graph``: each item's top-k cosine neighbours (self included), binary ("kNN-B") or weighted
  ("kNN-W"), normalised as deg_i^{-1/2} S_ij deg_j^{-1/2} with row sums as degrees.
* ``cached_knn``: the same, written once under a cache folder, keyed by a hash of the features and k.
* ``Edges`` / ``knn_edges`` / ``mix_edges``: the same graphs as differentiable torch edge lists (for graphs
  learned from trainable projections, e.g. LATTICE) and weighted mixes of graphs, sum_m w_m S_m.
* ``csr_gather`` / ``csr_rows``: the stored entries of some CSR rows / a row slice of a CSR matrix and its
  transpose (for products needed at a batch's rows only; :mod:`r2mr.data.row_slice`).
* ``rw_adj_self_loops``: D~^{-1} (A + I) with D~ = diag(deg + 1) (LATTICE's user-item graph).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ..core.atomic_io import atomic_path
from .propagation import layer_mean, layer_mean_parts, spmm  # noqa: F401 -- imported by the models from here
from .row_slice import csr_gather, csr_positions, csr_rows  # noqa: F401 -- the same


def to_torch(m: sp.spmatrix, layout: str = "csr") -> torch.Tensor:
    """scipy sparse -> torch sparse (float32), CSR by default (fast spmm with autograd on CPU and CUDA)."""
    coo = m.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        t = torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data.astype(np.float32)), coo.shape).coalesce()
        return t.to_sparse_csr() if layout == "csr" else t


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


class Edges(NamedTuple):
    """A sparse (n, n) matrix as an edge list; duplicate (row, col) pairs add up. ``vals`` may carry gradients."""

    rows: torch.Tensor  # (nnz,) int64
    cols: torch.Tensor  # (nnz,) int64
    vals: torch.Tensor  # (nnz,)
    n: int

    @classmethod
    def from_scipy(cls, m: sp.spmatrix) -> "Edges":
        coo = m.tocoo()
        return cls(torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64)),
                   torch.from_numpy(coo.data.astype(np.float32)), m.shape[0])

    def to_scipy(self) -> sp.csr_matrix:
        """(n, n) CSR with duplicates summed."""
        v = self.vals.detach().cpu().double().numpy()
        return sp.csr_matrix((v, (self.rows.cpu().numpy(), self.cols.cpu().numpy())), shape=(self.n, self.n))

    def to(self, device: torch.device | str) -> "Edges":
        return Edges(self.rows.to(device), self.cols.to(device), self.vals.to(device), self.n)

    def detach(self) -> "Edges":
        return Edges(self.rows, self.cols, self.vals.detach(), self.n)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """y = S x for x (n, d) -> (n, d); differentiable in ``vals`` and ``x``."""
        msg = self.vals.unsqueeze(1) * x.index_select(0, self.cols)  # (nnz, d); index_select: deterministic backward
        return torch.zeros(self.n, x.shape[1], dtype=msg.dtype, device=x.device).index_add(0, self.rows, msg)

    def sym_norm(self) -> "Edges":
        """deg_i^{-1/2} S_ij deg_j^{-1/2} with deg = row sums; rows with no positive sum get 0."""
        deg = torch.zeros(self.n, dtype=self.vals.dtype, device=self.vals.device).index_add(0, self.rows, self.vals)
        inv = torch.where(deg > 0, deg.clamp(min=1e-30).pow(-0.5), torch.zeros_like(deg))  # (n,)
        vals = inv.index_select(0, self.rows) * self.vals * inv.index_select(0, self.cols)  # (nnz,)
        return Edges(self.rows, self.cols, vals, self.n)


def knn_edges(x: torch.Tensor, k: int, weighted: bool = True) -> Edges:
    """Each row's top-k cosine neighbours (self included), unnormalised: cosine values if ``weighted``, else 1.

    The neighbours are chosen without gradient; the weighted values are recomputed from ``x`` so that they
    are differentiable (the same values and gradient as a dense top-k of the cosine matrix).
    """
    n = x.shape[0]
    _, idx = topk_cosine(x.detach(), k)  # (n, k)
    rows = torch.arange(n, device=x.device).repeat_interleave(k)  # (n * k,)
    cols = idx.reshape(-1)  # (n * k,)
    if not weighted:
        return Edges(rows, cols, torch.ones(n * k, device=x.device), n)
    xn = F.normalize(x.float(), dim=1)  # (n, d)
    return Edges(rows, cols, (xn.index_select(0, rows) * xn.index_select(0, cols)).sum(1), n)


def mix_edges(graphs: Sequence[Edges], weights: Sequence[float] | torch.Tensor) -> Edges:
    """sum_m w_m S_m over the union of edges (no re-normalisation); ``weights`` may be a tensor with gradients."""
    if len(graphs) != len(weights):
        raise ValueError(f"{len(graphs)} graphs but {len(weights)} weights")
    vals = torch.cat([w * g.vals for g, w in zip(graphs, weights)])  # (sum nnz,)
    return Edges(torch.cat([g.rows for g in graphs]), torch.cat([g.cols for g in graphs]), vals, graphs[0].n)


def knn_graph(features: np.ndarray | torch.Tensor, k: int, weighted: bool = False) -> sp.csr_matrix:
    """Normalised item-item kNN graph (n_items, n_items); binary values 1 before normalisation unless weighted."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    e = knn_edges(x, k, weighted)
    return Edges(e.rows, e.cols, e.vals.double(), e.n).sym_norm().to_scipy()


def rw_adj_self_loops(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """D~^{-1} (A + I), shape (U + I, U + I): the bipartite graph with self-loops, row-normalised (deg + 1)."""
    r = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(n_users, n_items))
    a = sp.bmat([[None, r], [r.T, None]], format="csr") + sp.identity(n_users + n_items, format="csr")
    deg = np.asarray(a.sum(axis=1)).ravel()  # (U + I,) = training degree + 1
    return (sp.diags(1.0 / deg) @ a).tocsr()


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
    with atomic_path(path) as tmp:  # the user's umask, like every other file the package writes
        sp.save_npz(tmp, g)
    return g
