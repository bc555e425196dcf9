"""The method tutorial (notebook 00_a_method): a toy graph small enough to follow by hand, the Reviewer and the
Rewriter built on it from the library's own classes, and R2MR's architecture drawn with matplotlib.

Nothing here is used by training; the notebook computes the Reviewer's scores by hand (numpy) beside
:class:`r2mr.models.r2mr.reviewer.Reviewer` and runs one :func:`r2mr.models.r2mr.rewriter.rewrite_round` on this toy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..models.r2mr.reviewer import Reviewer
from ..models.r2mr.rewriter import Rewriter, RewriterConfig

MODALITIES = ["text", "image"]
# 6 users x 6 items, 14 training interactions: (user, item)
EDGES = [(0, 0), (0, 1), (1, 0), (1, 2), (1, 3), (2, 1), (2, 4), (3, 2), (3, 5), (4, 3), (4, 4), (5, 0), (5, 4),
         (5, 5)]


@dataclass
class Toy:
    """The toy: training edges ``users``, ``items`` (E,), a Reviewer (eval mode: no dropout), the user-ID
    table ``z`` (U, d) and the features ``feats`` {modality: (I, d)}."""

    users: np.ndarray
    items: np.ndarray
    n_users: int
    n_items: int
    reviewer: Reviewer
    z: torch.Tensor
    feats: dict[str, torch.Tensor]

    def interactions(self) -> pd.DataFrame:
        """The (U, I) interaction matrix as 0/1, for display."""
        r = np.zeros((self.n_users, self.n_items), dtype=int)
        r[self.users, self.items] = 1
        return pd.DataFrame(r, index=[f"user {u}" for u in range(self.n_users)],
                            columns=[f"item {i}" for i in range(self.n_items)])


def toy(seed: int = 2, dim: int = 4, perspectives: int = 2) -> Toy:
    """The toy graph with a Reviewer of ``perspectives`` chunks of width ``dim / perspectives`` (the official
    split form, weights U(-1, 1)), a random user-ID table and tanh-range features; seeded."""
    users, items = (np.array(col) for col in zip(*EDGES))
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    torch.manual_seed(seed)
    reviewer = Reviewer(users, items, n_users, n_items, dim, MODALITIES, n_perspectives=perspectives).eval()
    z = torch.randn(n_users, dim)  # (U, d)
    feats = {m: torch.tanh(torch.randn(n_items, dim)) for m in MODALITIES}  # (I, d) each
    return Toy(users, items, n_users, n_items, reviewer, z, feats)


def small_rewriter(dim: int = 4, seed: int = 0) -> Rewriter:
    """A Rewriter of the official shape (prompt, encoder, codebook of sub-vectors, decoder, discriminator)
    at toy widths: latent 16 cut into 4 pieces of 4, a codebook of 8 entries."""
    torch.manual_seed(seed)
    cfg = RewriterConfig(rw_prompt_dim=4, rw_hidden=(16,), rw_latent=16, rw_codebook=8, rw_code_dim=4,
                         rw_disc_hidden=(8,), rw_batch=4)
    return Rewriter(dim, MODALITIES, cfg)


# -- the architecture figure --------------------------------------------------------------------------------
BOXES = {  # name: (x, y, label, colour)
    "feat_t": (0.09, 0.80, "text feature\n$e_i^t$ (trainable)", "#c6dbef"),
    "feat_v": (0.09, 0.26, "image feature\n$e_i^v$ (trainable)", "#c6dbef"),
    "users": (0.09, 0.53, "the item's users\n$z_u,\\ u \\in N(i)$", "#fdd0a2"),
    "reviewer": (0.38, 0.53, "Modality Reviewer\n$s_i^m = $ mean over $u \\in N(i)$, $k$\nof "
                             "$\\sigma(a_u^{(k)} \\cdot g_m(e_i^m))$", "#fdae6b"),
    "fusion_t": (0.66, 0.80, "fusion (text)\n$(s_i^t+0.001)\\,e_i^t + (1-s_i^t)\\,h_i$", "#c7e9c0"),
    "fusion_v": (0.66, 0.26, "fusion (image)\n$(s_i^v+0.001)\\,e_i^v + (1-s_i^v)\\,h_i$", "#c7e9c0"),
    "gcn": (0.91, 0.53, "LightGCN per modality\n(2 layers, summed)\nconcatenate, dot product\nBPR loss", "#a1d99b"),
    "rewriter": (0.38, 0.04, "Modality Rewriter, every few epochs: on disparity items,\nVQ encoder-decoder maps the "
                             "strong modality to the weak one;\nthe weak row ($e_i^t$ or $e_i^v$) is replaced "
                             "if the Reviewer scores it "
                             "$> \\eta$", "#dadaeb"),
}
ARROWS = [("feat_t", "reviewer", "-"), ("feat_v", "reviewer", "-"), ("users", "reviewer", "-"),
          ("reviewer", "fusion_t", "-"), ("reviewer", "fusion_v", "-"), ("feat_t", "fusion_t", "-"),
          ("feat_v", "fusion_v", "-"), ("fusion_t", "gcn", "-"), ("fusion_v", "gcn", "-"),
          ("reviewer", "rewriter", "--"), ("rewriter", "feat_v", "--")]


def architecture_figure() -> "object":
    """R2MR's data flow (official variant): features and users -> Reviewer -> fusion -> LightGCN -> BPR, with
    the Rewriter overwriting weak feature rows between epochs (dashed). Returns a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5.6))
    ax.set(xlim=(-0.05, 1.05), ylim=(-0.08, 0.95))
    ax.axis("off")
    texts = {name: ax.text(x, y, label, ha="center", va="center", fontsize=9,
                           bbox=dict(boxstyle="round,pad=0.5", fc=colour, ec="0.3"))
             for name, (x, y, label, colour) in BOXES.items()}
    fig.canvas.draw()  # lays out the boxes, so the arrows can end at their edges
    for a, b, style in ARROWS:
        ax.annotate("", xy=BOXES[b][:2], xytext=BOXES[a][:2],
                    arrowprops=dict(arrowstyle="-|>", color="0.3", lw=1.1, linestyle=style, shrinkA=1, shrinkB=1,
                                    patchA=texts[a].get_bbox_patch(), patchB=texts[b].get_bbox_patch()))
    ax.set_title("R2MR (official variant): the Reviewer's scores gate each feature before the graph model; "
                 "the Rewriter (dashed) replaces weak feature rows", fontsize=10)
    return fig
