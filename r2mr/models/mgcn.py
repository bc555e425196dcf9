"""MGCN (Yu et al., "Multi-View Graph Convolutional Network for Multimedia Recommendation", ACM MM 2023), as in
MMRec (identical to the authors' code; baselines spec section 7).

For each of the data set's M >= 1 modalities m (trainable raw table x^m, projection W_m, gates g_m, p_m):
1. purifier: e^m = Q * sigmoid(g_m(W_m x^m))  (I, d);
2. user-item view: C = [C_u; C_i] = LightGCN mean of layers 0..2 on A_hat_sym (zero degree -> 0);
3. item-item view: e_bar^m = S_m e^m with S_m = kNN-W(x^m, k) (frozen, cached, per modality);
   users u_bar^m = R_hat e_bar^m with R_hat_ui = 1/sqrt(d_u d_i); M^m = [u_bar^m; e_bar^m];
4. fuser: alpha = softmax_m q(M^m) with q(x) = w^T tanh(W x + b) shared by the modalities;
   common = sum_m alpha_m M^m; side = (sum_m sigmoid(p_m(C)) * (M^m - common) + common) / (M + 1);
5. final = C + side, s(u, i) = e_u . e_i.
Loss: BPR (log-sigmoid) + reg_weight * HalfL2(e_u, e_i+, e_i-) / 2048
      + cl_loss * [InfoNCE_0.2(side_i+, C_i+) + InfoNCE_0.2(side_u, C_u)].
With text + image the divisor M + 1 = 3 is MGCN's; for other modality sets (TikTok image + audio: also 3) the
attention and the per-modality purifier / preference gates are applied to every modality alike.

Defaults (MMRec MGCN.yaml, the authors' MGCN issue #4 for cl_loss): d = 64, k = 10, 2 user-item rounds, 1
item-item round, reg_weight 1e-4, cl_loss 0.01 ("best in most cases"; no per-data-set table is published),
tau 0.2 (hard-coded in the code), lr 1e-3 with schedule [0.96, 50]. Linear layers use PyTorch's default init.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..core.config_rules import Validated
from ..data import Dataset
from ..data.graph import cached_knn, spmm, sym_adj, to_torch, ui_norm
from ..data.sampler import Batch
from .base import Recommender, feature_tables, xavier_uniform_table
from .lightgcn import propagate
from .losses import bpr, half_l2, info_nce


@dataclass
class MGCNConfig(Validated):
    embedding_size: int = 64  # d (MMRec)
    knn_k: int = 10  # neighbours per item in each kNN-W graph (MMRec)
    n_ui_layers: int = 2  # user-item LightGCN rounds (MMRec)
    n_layers: int = 1  # item-item rounds on S_m (MMRec)
    reg_weight: float = 1e-4  # weight of HalfL2 on the final batch vectors (MMRec, fixed)
    cl_loss: float = 0.01  # weight of the two InfoNCE terms (author: 0.01 best "in most cases"; grid 1e-3, 1e-2, 0.1)
    tau: float = 0.2  # InfoNCE temperature (hard-coded 0.2 in the code)
    l2_divisor: int = 2048  # HalfL2 divisor = MMRec's configured train_batch_size, also for a smaller last batch


def gate(d: int) -> nn.Sequential:
    """x -> sigmoid(W x + b), (N, d) -> (N, d)."""
    return nn.Sequential(nn.Linear(d, d), nn.Sigmoid())


def fuse(views: torch.Tensor, content: torch.Tensor, query: nn.Module, prefer: list[nn.Module]) -> torch.Tensor:
    """MGCN's fuser: views (M, N, d) of the modalities, content C (N, d) -> side (N, d)."""
    alpha = torch.softmax(query(views), dim=0)  # (M, N, 1)
    common = (alpha * views).sum(0)  # (N, d)
    specific = sum(p(content) * (v - common) for p, v in zip(prefer, views))  # (N, d)
    return (specific + common) / (len(prefer) + 1)


class MGCN(Recommender):
    Config = MGCNConfig
    needs_features = True
    train_defaults = {"lr_decay": 0.96, "lr_decay_every": 50}

    def __init__(self, ds: Dataset, cfg: MGCNConfig, cache_dir: str | Path | None = None) -> None:
        super().__init__(ds, cfg)
        d = cfg.embedding_size
        self.modalities = ds.modalities
        self.user_emb = xavier_uniform_table(ds.n_users, d)  # (U, d)
        self.item_emb = xavier_uniform_table(ds.n_items, d)  # (I, d)
        self.feats = feature_tables(ds.features)  # m -> (I, d_m), trainable
        self.proj = nn.ModuleDict({m: nn.Linear(x.shape[1], d) for m, x in ds.features.items()})
        self.purify = nn.ModuleDict({m: gate(d) for m in self.modalities})
        self.prefer = nn.ModuleDict({m: gate(d) for m in self.modalities})
        self.query = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))
        tr = ds.train
        self.register_buffer("adj", to_torch(sym_adj(tr.users, tr.items, ds.n_users, ds.n_items, eps=0.0)),
                             persistent=False)  # (U+I, U+I)
        r = ui_norm(tr.users, tr.items, ds.n_users, ds.n_items, eps=0.0)  # R_hat (U, I)
        self.register_buffer("r_hat", to_torch(r), persistent=False)  # (U, I)
        self.register_buffer("r_hat_t", to_torch(r.T), persistent=False)  # (I, U)
        for k, m in enumerate(self.modalities):
            s = cached_knn(ds.features[m], cfg.knn_k, True, cache_dir)  # (I, I)
            self.register_buffer(f"knn_{k}", to_torch(s), persistent=False)
            self.register_buffer(f"knn_t_{k}", to_torch(s.T), persistent=False)

    def modality_view(self, k: int, m: str) -> torch.Tensor:
        """M^m = [R_hat e_bar^m; e_bar^m], (U+I, d)."""
        e = self.item_emb * self.purify[m](self.proj[m](self.feats[m]))  # (I, d)
        for _ in range(self.cfg.n_layers):
            e = spmm(getattr(self, f"knn_{k}"), e, getattr(self, f"knn_t_{k}"))  # (I, d)
        u = spmm(self.r_hat, e, self.r_hat_t)  # (U, d)
        return torch.cat([u, e])  # (U+I, d)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, side), each (U+I, d)."""
        content = propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), self.cfg.n_ui_layers)  # (U+I, d)
        views = torch.stack([self.modality_view(k, m) for k, m in enumerate(self.modalities)])  # (M, U+I, d)
        side = fuse(views, content, self.query, [self.prefer[m] for m in self.modalities])  # (U+I, d)
        return content, side

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        content, side = self.forward()
        final = content + side  # (U+I, d)
        return final[: self.n_users], final[self.n_users:]

    def loss(self, batch: Batch) -> torch.Tensor:
        content, side = self.forward()
        final = content + side  # (U+I, d)
        pos, neg = self.n_users + batch.pos, self.n_users + batch.neg  # node ids of the items
        u = final.index_select(0, batch.users)  # (B, d)
        i, j = final.index_select(0, pos), final.index_select(0, neg)  # (B, d) each
        rank = bpr((u * i).sum(1), (u * j).sum(1))
        reg = half_l2(u, i, j, divisor=self.cfg.l2_divisor)
        cl = (info_nce(side.index_select(0, pos), content.index_select(0, pos), self.cfg.tau)
              + info_nce(side.index_select(0, batch.users), content.index_select(0, batch.users), self.cfg.tau))
        return rank + self.cfg.reg_weight * reg + self.cfg.cl_loss * cl
