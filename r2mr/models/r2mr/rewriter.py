"""R2MR's Modality Rewriter (spec section 7): a prompt-conditioned VQ encoder-decoder plus a discriminator.

    y_hat = Dec(Q(Enc([x || pi_c])))       x: a source-modality feature (d), pi_c: the learned prompt of
                                            the source -> target pair c (one per ordered modality pair)
    Enc: B(d + 256 -> 1024), B(1024 -> 2048), B(2048 -> 1024);  Dec: B(1024 -> 1024), B(1024 -> 2048), B(2048 -> d)
    Q: the 1024-d code is cut into 32 sub-vectors of 32; each is replaced by its nearest codebook entry
       (4096 x 32), with the straight-through estimator z_q = z + sg(q - z)
    L_G = mean|y_hat - y| + mean((sg(q) - z)^2) + beta * mean((q - sg(z))^2)     (beta = 0.1 as coded)
    L_D = 0.1 * [BCE(D(y), 1) + BCE(D(y_hat), 0)]

Blocks are B(a -> b): y = W x + c, out = LayerNorm(y) + y (no activation). G: AdamW 5e-4, betas
(0.5, 0.9), weight decay 0.01; D: Adam 5e-5, betas (0.5, 0.9). Both are built once and keep their state
across rounds (first round 200 epochs, later rounds 20). By default D sees detached fakes and nothing
reaches G from L_D (spec 13 row 2). ``leak_disc_grad=True`` reproduces the official update order: the
gradient of 0.1 * BCE(D(y_hat), 0) w.r.t. G is left in G's .grad and added to the *next* step's gradient.
(On the authors' stack the leaked backward read partly updated weights; here it uses the pre-step weights,
the only form current PyTorch allows.)

Ablation switches (notebook 02): ``rw_arch`` = ``vq`` (the model above), ``ae`` (the same encoder and decoder
with the codebook taken out: y_hat = Dec(Enc([x || pi_c])), no VQ loss) or ``mlp`` (a plain mapping
Linear(d + 256 -> rw_hidden[0]), ReLU, Linear(-> d), no codebook); ``rw_discriminator=False`` builds no
discriminator and computes no L_D (with the default non-leaking update D never reaches G, so this changes
the generator only when ``leak_disc_grad`` is on; it saves D's compute either way).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .networks import Discriminator, Generator, RewriterConfig
from .reviewer import HIGH, STATE_NAMES, quality_states

log = logging.getLogger(__name__)
ScoreFn = Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]  # (target modality, items (n,), x (n, d)) -> (n,)


def modality_pairs(modalities: list[str]) -> list[tuple[str, str]]:
    """Every ordered (source, target) pair; its index is the prompt id (text -> image = 0 for two)."""
    return [(s, t) for s in modalities for t in modalities if s != t]


def training_pairs(feats: dict[str, torch.Tensor], items: torch.Tensor,
                   pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (P, d), pair ids (P,), y (P, d)) with P = |items| * n_pairs: every direction of each item."""
    xs = [feats[s][items] for s, _ in pairs]
    ys = [feats[t][items] for _, t in pairs]
    ids = [torch.full((len(items),), c, dtype=torch.long, device=items.device) for c in range(len(pairs))]
    return torch.cat(xs), torch.cat(ids), torch.cat(ys)


class Rewriter:
    """Generator, discriminator and their optimisers, trained across rounds (a plain object, not a
    submodule of the recommender: its parameters are not the recommender's and are not counted there)."""

    def __init__(self, dim: int, modalities: list[str], cfg: RewriterConfig) -> None:
        self.cfg, self.pairs = cfg, modality_pairs(modalities)
        self.gen = Generator(dim, len(self.pairs), cfg)
        self.disc = Discriminator(dim, cfg) if cfg.rw_discriminator else None
        self.opt_g = torch.optim.AdamW(self.gen.parameters(), lr=cfg.rw_lr, betas=(0.5, 0.9), weight_decay=0.01)
        self.opt_d = (torch.optim.Adam(self.disc.parameters(), lr=cfg.rw_disc_lr, betas=(0.5, 0.9))
                      if self.disc is not None else None)
        self.steps = 0  # generator steps taken over all rounds

    def to(self, device: torch.device) -> "Rewriter":
        self.gen.to(device)
        if self.disc is not None:
            self.disc.to(device)
        return self

    def step(self, x: torch.Tensor, pair: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One batch: ``step_leaky`` if ``leak_disc_grad`` (official update order) else ``step_plain``."""
        return self.step_leaky(x, pair, y) if self.cfg.leak_disc_grad else self.step_plain(x, pair, y)

    def _forward(self, x: torch.Tensor, pair: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(y_hat (B, d), L_rec, L_vq, L_G) of one batch."""
        y_hat, vq = self.gen(x, pair)
        rec = (y_hat - y).abs().mean()
        return y_hat, rec, vq, rec + vq

    def _disc_loss(self, y: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """L_D = w * [BCE(D(y), 1) + BCE(D(fake), 0)]."""
        ones, zeros = torch.ones(len(y), device=y.device), torch.zeros(len(y), device=y.device)
        return self.cfg.rw_gan_weight * (F.binary_cross_entropy_with_logits(self.disc(y), ones)
                                         + F.binary_cross_entropy_with_logits(self.disc(fake), zeros))

    def step_plain(self, x: torch.Tensor, pair: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The standard update: G steps on L_G; D steps on L_D with detached fakes (nothing reaches G).
        Returns the detached losses (tensors: no device synchronisation per step)."""
        y_hat, rec, vq, loss_g = self._forward(x, pair, y)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        disc = torch.zeros((), device=rec.device)
        if self.disc is not None:
            loss_d = self._disc_loss(y, y_hat.detach())
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            disc = loss_d.detach()
        self.steps += 1
        return {"rec": rec.detach(), "vq": vq.detach(), "disc": disc}

    def step_leaky(self, x: torch.Tensor, pair: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The official update order (spec 7.5): backward of L_G on top of the gradient left by the previous
        batch, G step, then L_D's backward, whose generator part (y_hat not detached) is left in G's .grad
        for the next step. Without a discriminator it is the plain step."""
        if self.disc is None:
            return self.step_plain(x, pair, y)
        y_hat, rec, vq, loss_g = self._forward(x, pair, y)
        loss_d = self._disc_loss(y, y_hat)
        g_params = list(self.gen.parameters())
        loss_g.backward(retain_graph=True)  # adds to the pending leaked gradient, if any
        leaked = torch.autograd.grad(loss_d, g_params, retain_graph=True, allow_unused=True)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward(inputs=list(self.disc.parameters()))
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.step()
        for p, g in zip(g_params, leaked):  # left for the next generator step
            p.grad = torch.zeros_like(p) if g is None else g
        self.steps += 1
        return {"rec": rec.detach(), "vq": vq.detach(), "disc": loss_d.detach()}

    def train_round(self, x: torch.Tensor, pair: torch.Tensor, y: torch.Tensor, epochs: int,
                    progress: bool | None = None) -> dict[str, float]:
        """``epochs`` passes over the pairs in shuffled batches (global torch RNG); last epoch's mean losses.
        A tqdm bar per round on a terminal (``progress=None``: when stderr is a terminal)."""
        self.gen.train()
        if self.disc is not None:
            self.disc.train()
        sums: dict[str, torch.Tensor] = {}
        show = sys.stderr.isatty() if progress is None else progress
        for _ in tqdm(range(epochs), desc="rewriter", unit="epoch", leave=False, disable=not show):
            perm = torch.randperm(len(x)).to(x.device)
            sums, n = {}, 0
            for s in range(0, len(x), self.cfg.rw_batch):
                idx = perm[s:s + self.cfg.rw_batch]
                for k, v in self.step(x[idx], pair[idx], y[idx]).items():
                    sums[k] = sums[k] + v if k in sums else v
                n += 1
        return {k: float(v) / max(n, 1) for k, v in sums.items()}

    @torch.no_grad()
    def generate(self, x: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """Continuous decoder outputs (n, d) in eval mode, in batches."""
        self.gen.eval()
        outs = [self.gen(x[s:s + self.cfg.rw_batch], pair[s:s + self.cfg.rw_batch])[0]
                for s in range(0, len(x), self.cfg.rw_batch)]
        return torch.cat(outs) if outs else x.new_empty(0, x.shape[1])

    def state_dict(self) -> dict[str, Any]:
        pending = [None if p.grad is None else p.grad.detach().clone() for p in self.gen.parameters()]
        return {"gen": self.gen.state_dict(), "disc": self.disc.state_dict() if self.disc is not None else None,
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
                "pending_grad": pending, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.load_state_dict(state["gen"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.disc is not None:
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
        for p, g in zip(self.gen.parameters(), state["pending_grad"]):
            p.grad = None if g is None else g.to(p.device)
        self.steps = state["steps"]


def accept(new: torch.Tensor, original: torch.Tensor, eta: float, rule: str) -> torch.Tensor:
    """Keep a rewrite? ``eta``: new > eta (official code); ``improve``: new > original (paper). Strict."""
    return new > eta if rule == "eta" else new > original


def rewrite_candidates(scores: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(items, source, target) modality indices (n,) for every low modality of every disparity item;
    the source is the item's highest-scoring high modality (the only one when there are two modalities)."""
    good = scores >= eta  # (I, M)
    disparity = good.any(1) & ~good.all(1)  # (I,)
    best = torch.where(good, scores, torch.full_like(scores, -1.0)).argmax(1)  # (I,)
    items, target = (~good & disparity.unsqueeze(1)).nonzero(as_tuple=True)  # (n,), (n,)
    return items, best[items], target


@torch.no_grad()
def rewrite_round(rw: Rewriter, feats: dict[str, torch.Tensor], classes: torch.Tensor, current: torch.Tensor,
                  score: ScoreFn, eta: float, rule: str, epochs: int) -> tuple[dict[str, tuple], dict[str, Any]]:
    """One round (spec 7.1-7.6): train ``rw`` on every direction of the high-quality items, rewrite the weak
    modality of disparity items, re-score and accept.

    ``feats`` {m: (I, d)}; ``classes`` (I, M) scores that define the groups; ``current`` (I, M) eval-mode
    scores (the "original" of the ``improve`` rule). Returns ({target: (items, new rows)}, statistics).
    An empty group is skipped; nothing is generated before the generator has had a training step.
    """
    t0 = time.perf_counter()
    state = quality_states(classes, eta)
    high = (state == HIGH).nonzero().squeeze(1)  # (|H|,)
    with torch.enable_grad():
        losses = rw.train_round(*training_pairs(feats, high, rw.pairs), epochs) if len(high) else {}
    log.info("rewriter: %d epochs on %d high-quality items in %.1f s", epochs if len(high) else 0, len(high),
             time.perf_counter() - t0)
    stats: dict[str, Any] = {"rewriter_epochs": epochs if len(high) else 0, "rewriter_loss": losses,
                             **{f"n_{n}": int((state == k).sum()) for k, n in enumerate(STATE_NAMES)}}
    items, src, tgt = rewrite_candidates(classes, eta)
    names = list(feats)
    updates: dict[str, list] = {}
    stats["directions"] = directions = {}
    for k, (s_name, t_name) in enumerate(rw.pairs if len(items) and rw.steps else []):
        idx = items[(src == names.index(s_name)) & (tgt == names.index(t_name))]  # (n,)
        if not len(idx):
            continue
        new_feat = rw.generate(feats[s_name][idx], torch.full_like(idx, k))  # (n, d)
        new, old = score(t_name, idx, new_feat), current[idx, names.index(t_name)]  # (n,) each
        keep = accept(new, old, eta, rule)
        updates.setdefault(t_name, []).append((idx[keep], new_feat[keep]))
        directions[f"{s_name}->{t_name}"] = {"candidates": len(idx), "accepted": int(keep.sum()),
                                             "mean_score_before": float(old.mean()),
                                             "mean_score_generated": float(new.mean()),
                                             "mean_score_after": float(torch.where(keep, new, old).mean())}
    return {t: tuple(torch.cat(parts) for parts in zip(*u)) for t, u in updates.items()}, stats
