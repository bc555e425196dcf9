"""BPR-MF (Rendle et al., UAI 2009) as in MMRec: s(u, i) = p_u . q_i, BPR loss + lambda * EmbLoss.

Defaults: d = 64 and Xavier-normal tables (MMRec); ``reg_weight`` chosen on the validation split of the
real Baby graph from MMRec's grid {2, 1, 0.1, 0.01, 1e-3, 1e-4, 1e-5} (see README "Baselines").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.config_rules import Validated
from ..data import Dataset
from ..data.sampler import Batch
from .base import Recommender, xavier_normal_table
from .losses import bpr, emb_loss


@dataclass
class BPRConfig(Validated):
    embedding_size: int = 64  # latent dimension d (MMRec)
    reg_weight: float = 0.1  # lambda on EmbLoss(p_u, q_i+, q_i-); best of MMRec's grid on Baby valid R@20


class BPR(Recommender):
    Config = BPRConfig

    def __init__(self, ds: Dataset, cfg: BPRConfig) -> None:
        super().__init__(ds, cfg)
        self.user_emb = xavier_normal_table(ds.n_users, cfg.embedding_size)  # (U, d)
        self.item_emb = xavier_normal_table(ds.n_items, cfg.embedding_size)  # (I, d)

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_emb, self.item_emb

    def loss(self, batch: Batch) -> torch.Tensor:
        # index_select, not [idx]: its backward (index_add) is deterministic on multi-threaded CPU
        u = self.user_emb.index_select(0, batch.users)  # (B, d)
        i, j = self.item_emb.index_select(0, batch.pos), self.item_emb.index_select(0, batch.neg)  # (B, d) each
        rank = bpr((u * i).sum(1), (u * j).sum(1), eps=1e-10)
        return rank + self.cfg.reg_weight * emb_loss(u, i, j)
