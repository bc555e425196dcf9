"""BM3 (Zhou et al., "Bootstrap Latent Representations for Multi-modal Recommendation", WWW 2023), as in MMRec
(identical to the authors' code; baselines spec section 6). Trains on (user, positive) pairs, no negatives.

u_o = LightGCN user output, i_o = LightGCN item output + Q (mean of layers 0..L on A_hat_sym);
m_o = W_m x^m for each of the data set's M >= 1 modalities (trainable raw tables, Xavier-normal W_m);
online views f(.) with one predictor f = Linear(d, d) shared by users, items and modalities; target views
drop_p(.) (inverted dropout, always on in training) under stop-gradient. With c = batch mean of cosine:
    L_rec   = [1 - c(f(u_o)_u, sg i_bar_i)] + [1 - c(f(i_o)_i, sg u_bar_u)]
    L_align = sum_m [1 - c(f(m_o)_i, sg i_bar_i)]
    L_mask  = sum_m [1 - c(f(m_o)_i, sg drop_p(m_o)_i)]
    L_reg   = (||U_o||_F + ||I_o||_F) / I   (all users and items, before the predictor)
    L = L_rec + reg_weight * L_reg + cl_weight * (L_align + L_mask);   s(u, i) = f(u_o)_u . f(i_o)_i.
With text + image the sums are BM3's two terms; TikTok image + audio uses image and audio alike.
The modality projections are applied to the batch rows only (the same values and gradients as projecting every
item and indexing), so the modality target dropout masks are drawn per batch row: a repeated item gets
independent masks, where MMRec draws one mask per item.

Defaults (authors' README, "best hyper-parameters", = paper Table III): Baby n_layers 1, dropout 0.5,
reg_weight 0.1; Sports n_layers 1, dropout 0.5, reg_weight 0.01; Clothing not published (MMRec grid n_layers
{1, 2} x reg_weight {0.1, 0.01} x dropout {0.3, 0.5}). cl_weight 2.0, d = 64, constant lr 1e-3 (MMRec BM3.yaml).
The class default is the Baby setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config_rules import Validated
from ..data import Dataset
from ..data.graph import sym_adj, to_torch
from ..data.sampler import Batch
from .base import Recommender, feature_tables, xavier_uniform_table
from .dropout import dropout
from .lightgcn import propagate_parts
from .losses import emb_loss


@dataclass
class BM3Config(Validated):
    embedding_size: int = 64  # d (MMRec)
    n_layers: int = 1  # LightGCN rounds (authors: 1 on Baby and Sports)
    dropout: float = 0.5  # target-view dropout rate p (authors: 0.5 on Baby and Sports)
    reg_weight: float = 0.1  # weight of L_reg (authors: Baby 0.1, Sports 0.01)
    cl_weight: float = 2.0  # weight of L_align + L_mask (MMRec BM3.yaml, fixed)


def cosine_loss(online: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - batch mean of cos(online_b, sg target_b); (B, d), (B, d) -> scalar."""
    return 1.0 - F.cosine_similarity(online, target.detach(), dim=-1).mean()


class BM3(Recommender):
    Config = BM3Config
    needs_features = True
    train_defaults = {"negatives": False}
    dataset_defaults = {
        "baby": {"n_layers": 1, "dropout": 0.5, "reg_weight": 0.1},  # authors' README / paper Table III
        "sports": {"n_layers": 1, "dropout": 0.5, "reg_weight": 0.01},  # authors' README / paper Table III
    }

    def __init__(self, ds: Dataset, cfg: BM3Config) -> None:
        super().__init__(ds, cfg)
        d = cfg.embedding_size
        self.user_emb = xavier_uniform_table(ds.n_users, d)  # (U, d)
        self.item_emb = xavier_uniform_table(ds.n_items, d)  # (I, d)
        self.predictor = nn.Linear(d, d)
        nn.init.xavier_normal_(self.predictor.weight)
        self.feats = feature_tables(ds.features)  # m -> (I, d_m), trainable
        self.proj = nn.ModuleDict({m: nn.Linear(x.shape[1], d) for m, x in ds.features.items()})
        for p in self.proj.values():
            nn.init.xavier_normal_(p.weight)
        a = sym_adj(ds.train.users, ds.train.items, ds.n_users, ds.n_items)
        self.register_buffer("adj", to_torch(a), persistent=False)  # (U+I, U+I)

    def encode(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(u_o (U, d), i_o (I, d)), before the predictor."""
        users, items = propagate_parts(self.adj, (self.user_emb, self.item_emb), self.cfg.n_layers)  # (U, d), (I, d)
        return users, items + self.item_emb

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.encode()
        return self.predictor(users), self.predictor(items)

    def loss(self, batch: Batch) -> torch.Tensor:
        users, items = self.encode()  # (U, d), (I, d)
        p = self.cfg.dropout
        with torch.no_grad():
            u_bar = dropout(users, p, training=True).index_select(0, batch.users)  # (B, d)
            i_bar = dropout(items, p, training=True).index_select(0, batch.pos)  # (B, d)
        u_on = self.predictor(users.index_select(0, batch.users))  # (B, d)
        i_on = self.predictor(items.index_select(0, batch.pos))  # (B, d)
        rec = cosine_loss(u_on, i_bar) + cosine_loss(i_on, u_bar)
        align = mask = 0.0
        for m, table in self.feats.items():
            m_o = self.proj[m](table.index_select(0, batch.pos))  # (B, d)
            m_on = self.predictor(m_o)  # (B, d)
            align = align + cosine_loss(m_on, i_bar)
            mask = mask + cosine_loss(m_on, dropout(m_o.detach(), p, training=True))
        reg = emb_loss(users, items)
        return rec + self.cfg.reg_weight * reg + self.cfg.cl_weight * (align + mask)
