"""VBPR (He & McAuley, AAAI 2016), in MMRec's "recommended" form (baselines spec section 3).

    iota_i = [gamma_i ; W f_i + b],   s(u, i) = theta_u . iota_i,
    L = BPR(s(u, i+), s(u, i-)) + lambda * EmbLoss(theta_u, iota_i+, iota_i-),

with theta_u in R^{2d}, gamma_i in R^d (Xavier-uniform tables), f_i the concatenation of **all** the data
set's modalities in canonical order (text, image, audio, ...; fixed, not trained) and one Linear(sum d_m -> d)
(Xavier-normal weight, zero bias). As in MMRec there are no bias terms (the paper's beta_u, beta_i, beta'
are dropped) and every modality is used where the paper used images only; BPR has MMRec's 1e-10 inside the
log. With TikTok's image + audio, f_i = [image_i ; audio_i] (256-d).

Defaults: d = 64 (MMRec). ``reg_weight``: MMRec searches {2, 1, 0.1, 0.01, 1e-3, 1e-4, 1e-5}; no best value
is published for any data set (spec section 3). On TikTok 0.1 had the best validation Recall@20 of
{0.1, 0.01, 1e-3, 1e-5} (0.025 / 0.023 / 0.022 / 0.017, seed 999); elsewhere 1e-3 is a placeholder: run the
grid before quoting VBPR on a new data set. Measured on TikTok's raw features, VBPR ranks below BPR-MF (test
Recall@20 0.020 vs 0.043), and with the content zeroed it recovers 0.039: the raw 256-d content, projected
and concatenated, hurts here (standardising the features did not help: 0.022).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core.config_rules import Validated
from ..data import Dataset
from ..data.sampler import Batch
from .base import Recommender, xavier_uniform_table
from .losses import bpr, emb_loss


@dataclass
class VBPRConfig(Validated):
    embedding_size: int = 64  # d: item ID part and content part each d, user vector 2d (MMRec)
    reg_weight: float = 1e-3  # lambda on EmbLoss; not published (MMRec grid 2 .. 1e-5), placeholder


class VBPR(Recommender):
    Config = VBPRConfig
    needs_features = True
    dataset_defaults = {"tiktok": {"reg_weight": 0.1}}  # best validation Recall@20 of the grid above

    def __init__(self, ds: Dataset, cfg: VBPRConfig) -> None:
        super().__init__(ds, cfg)
        d = cfg.embedding_size
        self.user_emb = xavier_uniform_table(ds.n_users, 2 * d)  # (U, 2d)
        self.item_emb = xavier_uniform_table(ds.n_items, d)  # (I, d)
        content = np.concatenate([ds.features[m] for m in ds.modalities], axis=1)  # (I, sum d_m)
        self.register_buffer("content", torch.from_numpy(content.astype(np.float32)))  # (I, sum d_m)
        self.proj = nn.Linear(content.shape[1], d)
        nn.init.xavier_normal_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """iota for ``items`` (all items if None): (B, 2d)."""
        ids = self.item_emb if items is None else self.item_emb.index_select(0, items)  # (B, d)
        feats = self.content if items is None else self.content.index_select(0, items)  # (B, sum d_m)
        return torch.cat([ids, self.proj(feats)], dim=1)  # (B, 2d)

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_emb, self.item_vectors()

    def loss(self, batch: Batch) -> torch.Tensor:
        u = self.user_emb.index_select(0, batch.users)  # (B, 2d)
        i, j = self.item_vectors(batch.pos), self.item_vectors(batch.neg)  # (B, 2d) each
        rank = bpr((u * i).sum(1), (u * j).sum(1), eps=1e-10)
        return rank + self.cfg.reg_weight * emb_loss(u, i, j)
