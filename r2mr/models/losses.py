"""Losses shared by the models (MMRec definitions)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr(pos: torch.Tensor, neg: torch.Tensor, eps: float | None = None) -> torch.Tensor:
    """Mean over the batch of -log sigma(pos - neg); scores (B,).

    ``eps=None`` uses log-sigmoid; ``eps=1e-10`` is MMRec's BPR/LightGCN/VBPR form -log(eps + sigma(.)).
    """
    diff = pos - neg
    if eps is None:
        return -F.logsigmoid(diff).mean()
    return -torch.log(eps + torch.sigmoid(diff)).mean()


def emb_loss(*tensors: torch.Tensor) -> torch.Tensor:
    """MMRec's EmbLoss: sum of (unsquared) Frobenius norms divided by the rows of the last tensor."""
    return sum(torch.linalg.norm(t) for t in tensors) / tensors[-1].shape[0]


def half_l2(*tensors: torch.Tensor, divisor: float) -> torch.Tensor:
    """1/2 * sum of squared L2 norms of all rows, divided by a fixed ``divisor`` (the configured batch size)."""
    return 0.5 * sum(t.pow(2).sum() for t in tensors) / divisor


def info_nce(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE over a batch (MGCN's form): rows L2-normalised; row b's positive is y_b and its candidates are
    every row of ``y`` (positive included, duplicates kept); mean over b of
    -log(exp(x_b . y_b / tau) / sum_b' exp(x_b . y_b' / tau)). x, y: (B, d)."""
    x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    logits = (x / tau) @ y.T  # (B, B); scaling the (B, d) side saves two (B, B) passes
    # mean of logsumexp_b' - logit_bb = cross-entropy with target b (one fused log-softmax, forward and backward)
    return F.cross_entropy(logits, torch.arange(len(x), device=x.device))
