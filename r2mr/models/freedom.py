"""FREEDOM (Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM MM 2023), as in MMRec (baselines spec section 5).

Frozen item-item graph, built once from the raw features and cached:
    S = sum_m w_m kNN-B(x^m, k),  w_image = alpha (``mm_image_weight``), the other modalities share 1 - alpha
(text + image: w_text = 0.9, w_image = 0.1 as published; TikTok image + audio: w_audio = 0.9, w_image = 0.1;
one modality: w = 1; no image: equal weights).
Degree-sensitive edge pruning, re-sampled before every epoch: draw floor(|E| (1 - rho)) training edges without
replacement with probability proportional to 1/sqrt(d_u d_i), and re-normalise the kept edges with their own
degrees, 1/sqrt(d'_u d'_i) (training only; evaluation uses the full A_hat_sym).
Forward: h = S Q (``n_mm_layers`` rounds); [u; i] = LightGCN mean of layers 0..L on the (pruned) graph;
e_u = u, e_i = i + h.
Loss: BPR(e_u, e_i+, e_i-) + lambda * sum_m BPR(e_u, W_m x^m_i+, W_m x^m_i-), with the raw feature tables
trainable (used only in that auxiliary term, so lambda = 0 leaves them and W_m without gradient).

Defaults: d = 64, k = 10, alpha = 0.1, n_mm_layers = 1, n_ui_layers = 2, constant lr 1e-3 (MMRec FREEDOM.yaml).
rho and lambda: MMRec's grid is rho in {0.8, 0.9} x lambda in {0, 1e-5, 1e-4, 1e-3}; the authors publish no
best values for any data set (spec section 5), so rho = 0.8, lambda = 1e-4 are placeholders: run the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..core.config_rules import Validated
from ..data import Dataset
from ..data.graph import Edges, cached_knn, degree_norm_values, mix_edges, spmm, sym_adj, to_torch
from ..data.sampler import Batch
from .base import Recommender, feature_tables, xavier_uniform_table
from .lightgcn import propagate_parts
from .losses import bpr


@dataclass
class FREEDOMConfig(Validated):
    embedding_size: int = 64  # d, also the width of the modality projections (MMRec feat_embed_dim 64)
    knn_k: int = 10  # neighbours per item in each kNN-B graph (MMRec)
    mm_image_weight: float = 0.1  # alpha, weight of the image graph; the rest share 1 - alpha (MMRec)
    dropout: float = 0.8  # rho, share of training edges pruned each epoch; best not published (grid 0.8, 0.9)
    reg_weight: float = 1e-4  # lambda on the modality BPR terms; best not published (grid 0, 1e-5, 1e-4, 1e-3)
    n_mm_layers: int = 1  # item-item propagation rounds (MMRec)
    n_ui_layers: int = 2  # user-item LightGCN rounds (MMRec)


def modality_weights(modalities: list[str], image_weight: float) -> list[float]:
    """Mixing weights: ``image`` gets alpha and the other modalities share 1 - alpha equally; a single modality
    gets 1; without an image modality all get equal weights."""
    if len(modalities) == 1:
        return [1.0]
    if "image" not in modalities:
        return [1.0 / len(modalities)] * len(modalities)
    rest = (1.0 - image_weight) / (len(modalities) - 1)
    return [image_weight if m == "image" else rest for m in modalities]


def frozen_item_graph(features: dict[str, np.ndarray], k: int, image_weight: float,
                      cache_dir: str | Path | None = None) -> sp.csr_matrix:
    """S = sum_m w_m kNN-B(x^m, k), shape (I, I); each kNN-B graph is cached under ``cache_dir``."""
    mods = list(features)
    graphs = [Edges.from_scipy(cached_knn(features[m], k, False, cache_dir)) for m in mods]
    return mix_edges(graphs, modality_weights(mods, image_weight)).to_scipy()


def pruning_probs(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """Sampling weight of each training edge, 1/sqrt(d_u d_i) (full training degrees), normalised to sum 1: (E,)."""
    p = torch.from_numpy(degree_norm_values(users, items, n_users, n_items))  # (E,)
    return p / p.sum()


def prune_edges(probs: torch.Tensor, dropout: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of the floor(E (1 - rho)) edges kept, drawn without replacement with probability ``probs``."""
    keep = int(len(probs) * (1.0 - dropout))
    if keep >= len(probs):
        return torch.arange(len(probs))
    return torch.multinomial(probs, keep, replacement=False, generator=generator)  # (keep,)


class FREEDOM(Recommender):
    Config = FREEDOMConfig
    needs_features = True

    def __init__(self, ds: Dataset, cfg: FREEDOMConfig, cache_dir: str | Path | None = None) -> None:
        super().__init__(ds, cfg)
        d = cfg.embedding_size
        self.user_emb = xavier_uniform_table(ds.n_users, d)  # (U, d)
        self.item_emb = xavier_uniform_table(ds.n_items, d)  # (I, d)
        self.feats = feature_tables(ds.features)  # m -> (I, d_m), trainable
        self.proj = nn.ModuleDict({m: nn.Linear(x.shape[1], d) for m, x in ds.features.items()})
        s = frozen_item_graph(ds.features, cfg.knn_k, cfg.mm_image_weight, cache_dir)
        self.register_buffer("mm_adj", to_torch(s), persistent=False)  # (I, I)
        self.register_buffer("mm_adj_t", to_torch(s.T), persistent=False)  # (I, I)
        self.train_users, self.train_items = ds.train.users, ds.train.items
        full = sym_adj(ds.train.users, ds.train.items, ds.n_users, ds.n_items)
        self.register_buffer("adj", to_torch(full), persistent=False)  # (U+I, U+I)
        self.probs = pruning_probs(ds.train.users, ds.train.items, ds.n_users, ds.n_items)  # (E,)
        self.pruned: torch.Tensor | None = None

    def on_epoch_start(self, epoch: int) -> None:
        """Re-sample the pruned user-item graph for this epoch (global torch RNG: restored on resume)."""
        kept = prune_edges(self.probs, self.cfg.dropout).numpy()  # (m,)
        a = sym_adj(self.train_users[kept], self.train_items[kept], self.n_users, self.n_items)
        self.pruned = to_torch(a).to(self.adj.device)  # (U+I, U+I)

    def embeddings(self, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(e_u (U, d), e_i (I, d)) on the user-item graph ``adj``."""
        h = self.item_emb  # (I, d)
        for _ in range(self.cfg.n_mm_layers):
            h = spmm(self.mm_adj, h, self.mm_adj_t)  # (I, d)
        users, items = propagate_parts(adj, (self.user_emb, self.item_emb), self.cfg.n_ui_layers)  # (U, d), (I, d)
        return users, items + h

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embeddings(self.adj)

    def loss(self, batch: Batch) -> torch.Tensor:
        if self.pruned is None:
            self.on_epoch_start(0)
        users, items = self.embeddings(self.pruned)
        u = users.index_select(0, batch.users)  # (B, d)
        i, j = items.index_select(0, batch.pos), items.index_select(0, batch.neg)  # (B, d) each
        rank = bpr((u * i).sum(1), (u * j).sum(1))
        aux = sum(self.modality_bpr(u, m, batch) for m in self.feats)
        return rank + self.cfg.reg_weight * aux

    def modality_bpr(self, u: torch.Tensor, m: str, batch: Batch) -> torch.Tensor:
        """BPR(e_u, W_m x^m_i+, W_m x^m_i-) for modality ``m``."""
        pos = self.proj[m](self.feats[m].index_select(0, batch.pos))  # (B, d)
        neg = self.proj[m](self.feats[m].index_select(0, batch.neg))  # (B, d)
        return bpr((u * pos).sum(1), (u * neg).sum(1))
