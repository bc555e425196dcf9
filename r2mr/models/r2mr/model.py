"""R2MR: Review and Rewrite Modality for Recommendation (Tang et al., KDD 2025), spec sections 3-8.

Per modality m, with Reviewer scores s^m (I,) (reviewer.py) and a fallback h (I, d):

    e~_i^m = (s_i^m + 0.001) e_i^m + (1 - s_i^m) h_i                                     (gating, 5.1)
    U_0 = rn(P^m), I_0 = rn(E~^m);  U_{l+1} = A I_l,  I_{l+1} = A^T U_l;  sum of layers 0..2  (5.2)
    user = [U^1 || ... || U^M],  item = [I^1 || ... || I^M]  (+ M_knn item, log version)  (5.3, 5.5)
    L = -mean log sigmoid(y_ui - y_uj) + 1e-4 * 1/2 sum ||.||^2 / 1024 on the batch rows   (6.2)

A = D_U^-1/2 R D_I^-1/2 (training edges). Every ``rewrite_every`` epochs (6, 12, ..., at most 10 rounds)
a rewrite round (rewriter.py) trains on high-quality items and overwrites accepted rows of the weak
modality of disparity items (spec 7-8). Variants (``variant``, presets applied to fields left at None):
``official``: h = tanh(A^T dropout(Z)), K = 1, accept if s_new > eta, item-item kNN hop on;
``paper``: h = a learned item-ID table, K = 3 perspectives of width d, accept if s_new > s_old, no kNN.
Official bugs are fixed by default; ``leak_disc_grad``, ``freeze_after_first_rewrite``,
``classes_from_last_batch`` and TrainConfig's ``lr_clamp=False`` restore them.

kNN hop (spec 5.5): M = sum_m w_m S_m, S_m the binary kNN graph (k = ``knn_k``, self included, symmetric
degree normalisation) of modality m's *preprocessed* features (after PCA and tanh, d wide) as they are when
the model is built; it is built once and not rebuilt when the features train or are rewritten. The
authors' cached graph came from outside their model, from features that cannot be recovered (spec 5.5).

Fidelity and ablation switches: ``reviewer_dtype="float16"`` computes the Reviewer's logits, sigmoids and
mean over K in half precision as the official code does (reviewer.consensus); ``pca="image_only"`` is
the official preprocessing rule literally (PCA on the image modality only, features.py);
``use_reviewer=False`` fixes s at 1, so e~ = 1.001 e (plain features after the row normalisation), h
and the Reviewer take no part, and no rewrite round runs (the Rewriter selects by the Reviewer's scores:
with s = 1 every item is high quality and none is a disparity item).

Speed (same maths; the tests compare with the plain form and with a frozen run of the earlier code): on
CPU the last user layer is computed only at the batch's users; the modalities are stacked into one
(I, M, d) tensor; the row normalisation has a closed-form backward. GPU switches (off by
default): ``compile`` (torch.compile of the gated item layer; ``reduce-overhead`` uses CUDA graphs) and
``tf32`` (TF32 matmuls; changes float32 results).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scipy.sparse as sp
import torch
from torch import nn

from ...core.errors import ConfigError, DataError
from ...data import Dataset
from ...data.graph import cached_knn, spmm, to_torch, ui_norm
from ...data.row_slice import spmm_rows
from ...data.sampler import Batch
from ..base import Recommender, xavier_normal_table
from ..dropout import Dropout
from ..losses import bpr, half_l2
from .features import content_control, preprocess
from .ops import gate, knn_weights, layer0, maybe_compile, row_normalise
from .reviewer import STATE_NAMES, Reviewer, quality_states
from .rewriter import Rewriter, RewriterConfig, rewrite_round

log = logging.getLogger(__name__)

PRESETS = {  # fields left at None take their variant's value
    "official": dict(n_perspectives=1, perspective_split=True, h_source="users", accept_rule="eta", knn_hop=True),
    "paper": dict(n_perspectives=3, perspective_split=False, h_source="item_id", accept_rule="improve", knn_hop=False),
}


@dataclass
class R2MRConfig(RewriterConfig):  # the rewriter's rw_* fields are inherited, so --set reaches them too
    variant: str = "official"  # official (the code behind the published log) | paper (spec section 11)
    dim: int = 0  # shared feature width d; 0 = 384 if every modality is >= 384 wide, else the narrowest width
    pca: str = "wider"  # PCA: wider (modalities wider than d) | all (also those d wide) | image_only (official rule)
    content: str = "real"  # content control: real | random (seeded N(0,1), same shapes) | frozen (not trained)
    random_widths: str = "text:384,image:4096"  # content=random on a set without feature files: modality:width
    n_perspectives: int | None = None  # K user perspectives; None = preset (official 1, paper 3)
    perspective_split: bool | None = None  # None = preset: True: a d->d user map cut in K chunks (official),
    #                                        False: a d->K*d map, K perspectives of width d (paper)
    h_source: str | None = None  # None = preset: users = tanh(A^T dropout(Z)) (official) | item_id table (paper)
    accept_rule: str | None = None  # None = preset: eta (s_new > eta, official) | improve (s_new > s_old, paper)
    knn_hop: bool | None = None  # None = preset: item-item kNN hop of the logged version (official on, paper off)
    review_init: str = "uniform"  # reviewer map weights: uniform U(-1,1) (official; saturated sigmoids) | xavier
    knn_k: int = 5  # neighbours per item (self included) of the kNN hop
    knn_image_weight: float = 0.1  # weight of the image kNN graph; other modalities share the rest equally
    dropout: float = 0.3  # dropout on the user-ID table, drawn separately for the reviewer and for h
    eta: float = 0.5  # quality threshold (high >= eta, low < eta)
    gate_offset: float = 1e-3  # the +0.001 on s in the gate's feature term
    n_layers: int = 2  # propagation layers (summed)
    reg: float = 1e-4  # weight of 1/2 sum ||.||^2 on the batch's final vectors
    reg_divisor: int = 1024  # divisor of that term (the configured batch size, also for the last batch)
    rewrite_every: int = 6  # a rewrite round after every epoch e with e % rewrite_every == 0, e > 0
    max_rounds: int = 10  # at most this many rewrite rounds
    freeze_after_first_rewrite: bool = False  # True: official accident, features stop training after round 1
    classes_from_last_batch: bool = False  # True: quality classes from the last batch's dropout scores (official)
    use_reviewer: bool = True  # False: s fixed at 1 (plain features, no h), no rewrite rounds (ablation)
    reviewer_dtype: str = "float32"  # float16: the Reviewer's logits and sigmoids in half precision (official code)
    compile: str = "off"  # off | default | reduce-overhead (torch.compile of the dense item layer; CUDA graphs)
    tf32: bool = False  # True: the trainer allows TF32 matmuls on CUDA for the run (changes float32 results)

    # every field is checked against r2mr/core/config_rules.py's RULES by the inherited __post_init__


def resolve(cfg: R2MRConfig) -> R2MRConfig:
    """A copy with every None field set from its variant's preset (explicit values win)."""
    preset = {k: v for k, v in PRESETS[cfg.variant].items() if getattr(cfg, k) is None}
    return dataclasses.replace(cfg, **preset)


class R2MR(Recommender):
    Config = R2MRConfig
    needs_features = True
    train_defaults = dict(batch_size=1024, optimizer="adamw", weight_decay=0.01, lr=1e-3, lr_schedule="linear",
                          lr_linear_epochs=70, max_epochs=200, stop_rule="both", patience=20, topk=(10, 20, 50))
    # TikTok's visual features are non-negative (mean 2.7): without centring, tanh saturates them.
    dataset_defaults = {"tiktok": {"pca": "all"}}

    @classmethod
    def resolved(cls, cfg: R2MRConfig) -> R2MRConfig:
        return resolve(cfg)

    @classmethod
    def requires_features(cls, cfg: R2MRConfig) -> bool:
        return cfg.content != "random"

    def __init__(self, ds: Dataset, cfg: R2MRConfig, cache_dir: str | Path | None = None) -> None:
        cfg = resolve(cfg)
        super().__init__(ds, cfg)
        seed = torch.initial_seed()  # the run seed: PCA and random features follow it
        raw = content_control(ds.features, cfg.content, ds.n_items, seed, cfg.random_widths)
        if len(raw) < 2:
            raise DataError(f"{ds.path}: R2MR needs at least two modalities, found {list(raw) or 'none'}; "
                            f"fix: add *_feat.npy files or use content=random")
        feats = preprocess(raw, cfg.dim, cfg.pca, seed)
        self.modalities = list(feats)
        self.dim = d = feats[self.modalities[0]].shape[1]
        if cfg.perspective_split and d % cfg.n_perspectives:
            raise ConfigError(f"dim {d} is not divisible by n_perspectives {cfg.n_perspectives}; fix: change K")
        train = cfg.content != "frozen"
        # ParameterDict sorts the keys of a plain dict; a list of pairs keeps the modality order
        self.features = nn.ParameterDict([(m, nn.Parameter(torch.from_numpy(f), requires_grad=train))
                                          for m, f in feats.items()])  # (I, d) each
        self.user_id = nn.Parameter(torch.empty(ds.n_users, d).uniform_(-1.0, 1.0))  # Z (U, d)
        self.prefs = nn.ParameterDict([(m, xavier_normal_table(ds.n_users, d)) for m in self.modalities])  # (U, d)
        self.reviewer = Reviewer(ds.train.users, ds.train.items, ds.n_users, ds.n_items, d, self.modalities,
                                 cfg.n_perspectives, cfg.perspective_split, cfg.dropout, cfg.review_init)
        if cfg.h_source == "item_id":
            self.item_id = xavier_normal_table(ds.n_items, d)  # (I, d)
        self.drop = Dropout(cfg.dropout)
        adj = ui_norm(ds.train.users, ds.train.items, ds.n_users, ds.n_items, eps=1e-8)
        self.register_buffer("adj", to_torch(adj), persistent=False)  # (U, I)
        self.register_buffer("adj_t", to_torch(adj.T.tocsr()), persistent=False)  # (I, U)
        if cfg.knn_hop:
            w = knn_weights(self.modalities, cfg.knn_image_weight)
            knn = sum(w[m] * cached_knn(f, cfg.knn_k, False, cache_dir) for m, f in feats.items())
            self.register_buffer("knn", to_torch(sp.csr_matrix(knn)), persistent=False)  # (I, I)
            self.register_buffer("knn_t", to_torch(sp.csr_matrix(knn.T)), persistent=False)  # (I, I)
        object.__setattr__(self, "_item_layer0", maybe_compile(self._items0, cfg.compile))
        object.__setattr__(self, "rewriter", Rewriter(d, self.modalities, cfg))  # not a submodule (own optimisers)
        self.rounds_done, self.round_stats = 0, []
        self.rewritten = {m: torch.zeros(ds.n_items, dtype=torch.bool) for m in self.modalities}  # (I,) each
        self._last_scores: torch.Tensor | None = None

    # -- forward -----------------------------------------------------------------------------------
    def review(self) -> torch.Tensor:
        """Reviewer scores s (I, M) of the current features (dropout on Z in training mode); ones without
        the Reviewer (``use_reviewer=False``)."""
        if not self.cfg.use_reviewer:
            return self.user_id.new_ones(self.n_items, len(self.modalities))
        return self.reviewer(self.user_id, {m: self.features[m] for m in self.modalities}, self.cfg.reviewer_dtype)

    def fallback(self) -> torch.Tensor:
        """h (I, d): tanh(A^T dropout(Z)) (official) or the item-ID table (paper)."""
        if self.cfg.h_source == "item_id":
            return self.item_id
        return torch.tanh(spmm(self.adj_t, self.drop(self.user_id), self.adj))  # (I, d)

    def forward_all(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(users (U, M d) or only ``rows`` (b, M d), items (I, M d), scores (I, M)).

        The last user layer is computed at ``rows`` only (the loss needs no other user). Same values as
        ``propagate_sum`` (the products see the same entries in the same order).
        """
        s = self.review()  # (I, M); draws the reviewer's dropout first, as before
        u0 = layer0([self.prefs[m] for m in self.modalities])  # (U, M d)
        h = self.fallback() if self.cfg.use_reviewer else None  # (I, d); without the Reviewer h has no weight
        feats = torch.stack([self.features[m] for m in self.modalities], 1)  # (I, M, d)
        i0 = self._item_layer0(feats, s, h)  # (I, M d)
        users, items = self.propagate(u0, i0, rows)
        if self.cfg.knn_hop:
            items = items + spmm(self.knn, items, self.knn_t)  # (I, M d)
        return users, items, s

    def _items0(self, feats: torch.Tensor, s: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """Gated, row-normalised item layer 0, (I, M d) from feats (I, M, d), s (I, M), h (I, d)."""
        return row_normalise(gate(feats, s, h, self.cfg.gate_offset)).flatten(1)

    def propagate(self, u0: torch.Tensor, i0: torch.Tensor,
                  rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums of layers 0..L, users at ``rows`` (b,) if given (repeats allowed).

        With ``rows`` the last user layer A I_{L-1} is computed at those rows only (A[rows] I_{L-1}).
        """
        u, i, su, si = u0, i0, u0, i0
        for layer in range(self.cfg.n_layers):
            i_next = spmm(self.adj_t, u, self.adj)  # (I, w)
            if layer == self.cfg.n_layers - 1 and rows is not None:
                return su.index_select(0, rows) + spmm_rows(self.adj, rows, i), si + i_next  # (b, w), (I, w)
            u = spmm(self.adj, i, self.adj_t)  # (U, w)
            su, si, i = su + u, si + i_next, i_next
        return (su if rows is None else su.index_select(0, rows)), si

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items, _ = self.forward_all()
        return users, items

    def loss(self, batch: Batch) -> torch.Tensor:
        # CPU: the last user layer at the batch's rows only (saves a full sparse product forward and backward);
        # elsewhere the full layer (slicing the graph costs more small kernels and host syncs than it saves)
        cpu = self.adj.device.type == "cpu"
        users, items, s = self.forward_all(batch.users if cpu else None)
        u = users if cpu else users.index_select(0, batch.users)  # (B, M d)
        if self.cfg.classes_from_last_batch:
            self._last_scores = s.detach()
        # index_select: its backward (index_add_) is deterministic on CPU, unlike indexing's index_put_
        i, j = items.index_select(0, batch.pos), items.index_select(0, batch.neg)  # (B, M d) each
        rank = bpr((u * i).sum(1), (u * j).sum(1))
        return rank + self.cfg.reg * half_l2(u, i, j, divisor=self.cfg.reg_divisor)

    # -- rewrite rounds ----------------------------------------------------------------------------
    @torch.no_grad()
    def eval_scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(eval-mode scores (I, M), eval-mode user views a (U, K, r)), without dropout."""
        was = self.training
        self.eval()
        s, a = self.review(), self.reviewer.user_views(self.user_id)
        self.train(was)
        return s, a

    def after_epoch(self, epoch: int) -> dict[str, Any]:
        c = self.cfg
        if not c.use_reviewer or epoch == 0 or epoch % c.rewrite_every or self.rounds_done >= c.max_rounds:
            return {}
        if self.rounds_done == 0:  # the Reviewer's view of the untouched features, for the statistics
            s, _ = self.eval_scores()
            self.before_rewrite = {"epoch": epoch, "scores": s.cpu(), "quality": quality_states(s, c.eta).cpu(),
                                   "rewritten": {m: v.clone() for m, v in self.rewritten.items()}}
        return {"rewrite": self.rewrite_round(epoch)}

    @torch.no_grad()
    def rewrite_round(self, epoch: int) -> dict[str, Any]:
        """Classify, train the rewriter on high items, rewrite disparity items, accept; returns statistics."""
        c, first, t0 = self.cfg, self.rounds_done == 0, time.perf_counter()
        current, a = self.eval_scores()
        use_last = c.classes_from_last_batch and self._last_scores is not None
        classes = self._last_scores if use_last else current  # (I, M)
        feats = {m: self.features[m].detach() for m in self.modalities}
        updates, stats = rewrite_round(self.rewriter.to(a.device), feats, classes, current,
                                       lambda m, idx, x: self.reviewer.score_rows(a, m, idx, x, c.reviewer_dtype),
                                       c.eta, c.accept_rule, c.rw_first_epochs if first else c.rw_epochs)
        for m, (idx, rows) in updates.items():
            self.features[m][idx] = rows
            self.rewritten[m][idx.cpu()] = True
        self.rounds_done += 1
        if c.freeze_after_first_rewrite and first:
            self.features.requires_grad_(False)
        stats = {"round": self.rounds_done, "epoch": epoch, **stats}  # no timing: reruns compare equal
        self.round_stats.append(stats)
        log.info("rewrite round %d after epoch %d done in %.1f s: %s", self.rounds_done, epoch,
                 time.perf_counter() - t0, {k: v for k, v in stats.items() if k not in ("round", "epoch")})
        return stats

    # -- state and results -------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {"rewriter": self.rewriter.state_dict(), "rounds_done": self.rounds_done,
                "round_stats": self.round_stats, "rewritten": self.rewritten,
                "before_rewrite": getattr(self, "before_rewrite", None)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.rewriter.to(self.user_id.device).load_state_dict(state["rewriter"])
        self.rounds_done, self.round_stats = state["rounds_done"], state["round_stats"]
        self.rewritten = {m: v.cpu() for m, v in state["rewritten"].items()}
        self.before_rewrite = state.get("before_rewrite")
        if self.cfg.freeze_after_first_rewrite and self.rounds_done:
            self.features.requires_grad_(False)

    def artifacts(self) -> dict[str, Any]:
        """Current eval-mode scores (I, M), quality states (I,), rewritten masks, per-round statistics and,
        once a round has run, ``before_rewrite``: the same scores, states and masks just before round 1."""
        s, _ = self.eval_scores()
        return {"variant": self.cfg.variant, "modalities": self.modalities, "eta": self.cfg.eta,
                "scores": s.cpu(), "quality": quality_states(s, self.cfg.eta).cpu(),
                "quality_names": list(STATE_NAMES), "rewritten": {m: v.clone() for m, v in self.rewritten.items()},
                "rewrite_rounds": list(self.round_stats), "before_rewrite": getattr(self, "before_rewrite", None)}
