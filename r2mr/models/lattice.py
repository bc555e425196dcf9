"""LATTICE (Zhang et al., "Mining Latent Structures for Multimedia Recommendation", ACM MM 2021), as ported to
MMRec (baselines spec section 4).

With modality weights w = softmax(a) (a learnable, all 0.5 at start, so equal weights) over the data set's
M >= 1 modalities, each with a trainable raw feature table x^m and a projection h^m = W_m x^m + b_m:
* original graphs, built once from the raw features and cached: S^o_m = kNN-W(x^m, k); O = sum_m w_m S^o_m;
* learned graph: L = sum_m w_m topk_k(cos(h^m)) (weighted top-k, not normalised per modality), then
  L_hat = D^{-1/2} L D^{-1/2} with row sums;
* item graph G = (1 - lambda) L_hat + lambda O.
G is rebuilt at the first batch of every epoch (gradients reach W_m, x^m and a through it) and at every
evaluation, and used detached for the epoch's other batches.
Forward: h = G^n Q; [u; i] = mean of layers 0..2 of LightGCN-style rounds on D~^{-1}(A + I) (row-normalised,
self-loops); e_u = u, e_i = i + h / ||h||.
Loss: BPR (log-sigmoid) + lambda_reg * HalfL2(e_u, e_i+, e_i-) / 2048.

Exactness: the spec's dense I x I matrices are replaced by sparse edge lists of the same top-k entries
(at most 2 M k per row), with values and gradients identical to the dense computation.

Defaults: d = 64, k = 10, lambda = 0.9, n = 1, 2 user-item rounds, lr schedule [0.96, 50] (MMRec LATTICE.yaml).
lr and lambda_reg: MMRec searches lr {1e-4, 5e-4, 1e-3, 5e-3} x lambda_reg {0, 1e-5, 1e-4, 1e-3} and publishes no
best values; the defaults are the authors' own (repository CRIPAC-DIG/LATTICE, codes/utility/parser.py:
lr 5e-4, regs[0] = 1e-5), which lie in that grid. No per-data-set values are published.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config_rules import Validated
from ..data import Dataset
from ..data.graph import Edges, cached_knn, knn_edges, mix_edges, rw_adj_self_loops, spmm, to_torch
from ..data.sampler import Batch
from .base import Recommender, feature_tables, xavier_uniform_table
from .lightgcn import propagate_parts
from .losses import bpr, half_l2


@dataclass
class LATTICEConfig(Validated):
    embedding_size: int = 64  # d (MMRec)
    feat_embed_dim: int = 64  # width of the projections W_m used for the learned graph (MMRec)
    knn_k: int = 10  # neighbours per item in the original and learned graphs (MMRec, paper)
    lambda_coeff: float = 0.9  # weight of the original graphs in G (MMRec, paper)
    n_layers: int = 1  # item-item propagation rounds n (MMRec, paper)
    n_ui_layers: int = 2  # user-item rounds = len(weight_size) (MMRec)
    reg_weight: float = 1e-5  # lambda_reg on HalfL2; authors' default regs[0] (MMRec grid 0 .. 1e-3)
    l2_divisor: int = 2048  # HalfL2 divisor = MMRec's configured train_batch_size, also for a smaller last batch


def learned_graph(projected: list[torch.Tensor], weights: torch.Tensor, k: int) -> Edges:
    """L_hat = sym-normalised sum_m w_m topk_k(cos(h^m)); ``projected`` holds h^m (I, d')."""
    return mix_edges([knn_edges(h, k, weighted=True) for h in projected], weights).sym_norm()


def item_graph(learned: Edges, original: list[Edges], weights: torch.Tensor, lam: float) -> Edges:
    """G = (1 - lambda) L_hat + lambda sum_m w_m S^o_m."""
    return mix_edges([learned, mix_edges(original, weights)], [1.0 - lam, lam])


class LATTICE(Recommender):
    Config = LATTICEConfig
    needs_features = True
    train_defaults = {"lr": 5e-4, "lr_decay": 0.96, "lr_decay_every": 50}

    def __init__(self, ds: Dataset, cfg: LATTICEConfig, cache_dir: str | Path | None = None) -> None:
        super().__init__(ds, cfg)
        self.modalities = ds.modalities
        self.user_emb = xavier_uniform_table(ds.n_users, cfg.embedding_size)  # (U, d)
        self.item_emb = xavier_uniform_table(ds.n_items, cfg.embedding_size)  # (I, d)
        self.feats = feature_tables(ds.features)  # m -> (I, d_m), trainable
        self.proj = nn.ModuleDict({m: nn.Linear(x.shape[1], cfg.feat_embed_dim) for m, x in ds.features.items()})
        self.modal_logits = nn.Parameter(torch.full((len(self.modalities),), 0.5))  # (M,)
        for k, m in enumerate(self.modalities):
            g = Edges.from_scipy(cached_knn(ds.features[m], cfg.knn_k, True, cache_dir))
            self.register_buffer(f"orig_idx_{k}", torch.stack([g.rows, g.cols]), persistent=False)  # (2, nnz)
            self.register_buffer(f"orig_val_{k}", g.vals, persistent=False)  # (nnz,)
        a = rw_adj_self_loops(ds.train.users, ds.train.items, ds.n_users, ds.n_items)
        self.register_buffer("adj", to_torch(a), persistent=False)  # (U+I, U+I)
        self.register_buffer("adj_t", to_torch(a.T), persistent=False)  # (U+I, U+I)
        self.graph: tuple[torch.Tensor, torch.Tensor] | None = None  # detached G of the epoch and G^T, sparse CSR
        self.rebuild = True

    def original_graphs(self) -> list[Edges]:
        idx = [getattr(self, f"orig_idx_{k}") for k in range(len(self.modalities))]
        return [Edges(i[0], i[1], getattr(self, f"orig_val_{k}"), self.n_items) for k, i in enumerate(idx)]

    def build_graph(self) -> Edges:
        """G from the current projections and modality weights (differentiable)."""
        w = torch.softmax(self.modal_logits, dim=0)  # (M,)
        projected = [self.proj[m](self.feats[m]) for m in self.modalities]  # M x (I, d')
        learned = learned_graph(projected, w, self.cfg.knn_k)
        return item_graph(learned, self.original_graphs(), w, self.cfg.lambda_coeff)

    def on_epoch_start(self, epoch: int) -> None:
        self.rebuild = True

    def embeddings(self, graph: Edges | tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(e_u (U, d), e_i (I, d)) with item graph ``graph`` (an edge list, or a detached (G, G^T) pair)."""
        h = self.item_emb  # (I, d)
        for _ in range(self.cfg.n_layers):
            h = graph.matmul(h) if isinstance(graph, Edges) else spmm(graph[0], h, graph[1])  # (I, d)
        users, items = propagate_parts(self.adj, (self.user_emb, self.item_emb), self.cfg.n_ui_layers,
                                       self.adj_t)  # (U, d), (I, d)
        return users, items + F.normalize(h, dim=1)

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embeddings(self.build_graph())

    def loss(self, batch: Batch) -> torch.Tensor:
        if self.rebuild or self.graph is None:
            graph = self.build_graph()
            g, dev = graph.to_scipy(), self.item_emb.device  # the same G, detached, as CSR for the other batches
            self.graph = (to_torch(g).to(dev), to_torch(g.T).to(dev))  # (I, I) each
            self.rebuild = False
        else:
            graph = self.graph
        users, items = self.embeddings(graph)
        u = users.index_select(0, batch.users)  # (B, d)
        i, j = items.index_select(0, batch.pos), items.index_select(0, batch.neg)  # (B, d) each
        rank = bpr((u * i).sum(1), (u * j).sum(1))
        return rank + self.cfg.reg_weight * half_l2(u, i, j, divisor=self.cfg.l2_divisor)
