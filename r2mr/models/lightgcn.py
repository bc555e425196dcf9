"""LightGCN (He et al., SIGIR 2020) as in MMRec.

E^0 = [P; Q] (Xavier-uniform), E^{l+1} = A_hat E^l with A_hat = D^{-1/2} A D^{-1/2} (degree + 1e-7),
final = mean(E^0..E^L); loss = BPR on the final vectors + lambda * EmbLoss on the layer-0 rows.
Defaults: d = 64; ``n_layers`` and ``reg_weight`` chosen on the validation split of the real Baby graph
from a sub-grid of MMRec's {1,2,3,4} x {1e-2..1e-6} (see README "Baselines").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.config_rules import Validated
from ..data import Dataset
from ..data.graph import layer_mean, layer_mean_parts, sym_adj, to_torch
from ..data.sampler import Batch
from .base import Recommender, xavier_uniform_table
from .losses import bpr, emb_loss


@dataclass
class LightGCNConfig(Validated):
    embedding_size: int = 64  # latent dimension d (MMRec)
    n_layers: int = 4  # propagation rounds L; best on Baby valid (grid 1-4, see the README)
    reg_weight: float = 1e-4  # lambda on EmbLoss of the ego embeddings; best on Baby valid


def propagate(adj: torch.Tensor, ego: torch.Tensor, n_layers: int, adj_t: torch.Tensor | None = None,
              last_rows: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of [ego, A ego, ..., A^L ego]; ego (N, d) -> (N, d). ``adj_t`` = A^T (default: A is symmetric);
    ``last_rows``: the only rows the caller reads (see :func:`r2mr.data.propagation.layer_mean`).

    A running sum, no stacked copy of the layers: ((0 + E^0) + E^1) + ... then / (L + 1), the additions and
    the division of ``torch.stack(layers).mean(0)`` in its order (its sum starts at +0.0), so values and
    gradients are the same bits (tests/test_kernels.py); see :func:`r2mr.data.propagation.layer_mean`."""
    return layer_mean(adj, ego, n_layers, adj_t, last_rows)


def propagate_parts(adj: torch.Tensor, parts: tuple[torch.Tensor, ...], n_layers: int,
                    adj_t: torch.Tensor | None = None, last_rows: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, ...]:
    """:func:`propagate` of ``torch.cat(parts)`` split back into the parts' rows, e.g. (users (U, d), items (I, d))
    from the two tables: one operation, whose backward joins the parts' gradients once (same bits as
    concatenating, propagating and slicing; see :func:`r2mr.data.propagation.layer_mean_parts`)."""
    return layer_mean_parts(adj, parts, n_layers, adj_t, last_rows)


class LightGCN(Recommender):
    Config = LightGCNConfig

    def __init__(self, ds: Dataset, cfg: LightGCNConfig) -> None:
        super().__init__(ds, cfg)
        self.user_emb = xavier_uniform_table(ds.n_users, cfg.embedding_size)  # (U, d)
        self.item_emb = xavier_uniform_table(ds.n_items, cfg.embedding_size)  # (I, d)
        adj = sym_adj(ds.train.users, ds.train.items, ds.n_users, ds.n_items)
        self.register_buffer("adj", to_torch(adj), persistent=False)  # (U+I, U+I)

    def final_embeddings(self, last_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(users (U, d), items (I, d)); with ``last_rows`` (graph rows, sorted unique) only those rows are
        computed in full: read no others."""
        users, items = propagate_parts(self.adj, (self.user_emb, self.item_emb), self.cfg.n_layers,
                                       last_rows=last_rows)
        return users, items

    def loss(self, batch: Batch) -> torch.Tensor:
        # the last layer at the batch's graph rows only (the loss reads no others): the same values there
        rows = torch.unique(torch.cat([batch.users, batch.pos + self.n_users, batch.neg + self.n_users]))
        users, items = self.final_embeddings(rows)
        # index_select, not [idx]: its backward (index_add) is deterministic on multi-threaded CPU
        u, i, j = users.index_select(0, batch.users), items.index_select(0, batch.pos), items.index_select(0, batch.neg)
        rank = bpr((u * i).sum(1), (u * j).sum(1), eps=1e-10)
        reg = emb_loss(self.user_emb.index_select(0, batch.users), self.item_emb.index_select(0, batch.pos),
                       self.item_emb.index_select(0, batch.neg))
        return rank + self.cfg.reg_weight * reg
