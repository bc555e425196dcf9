"""The Modality Rewriter's configuration and networks (spec section 7; the training loop is
:mod:`r2mr.models.r2mr.rewriter`): blocks B(a -> b), the prompt-conditioned generator (encoder, VQ codebook,
decoder; or the ``ae`` / ``mlp`` ablations) and the discriminator. Shapes: B rows, d feature width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...core.config_rules import Validated


@dataclass
class RewriterConfig(Validated):
    rw_prompt_dim: int = 256  # width of each learned source -> target prompt
    rw_hidden: tuple[int, ...] = (1024, 2048)  # hidden widths of the encoder and of the decoder (both as coded)
    rw_latent: int = 1024  # encoder output width, quantised in rw_latent / rw_code_dim pieces
    rw_codebook: int = 4096  # codebook entries
    rw_code_dim: int = 32  # width of one codebook entry
    rw_beta: float = 0.1  # weight of the codebook-moving term (the official code swaps VQ-VAE's weights)
    rw_disc_hidden: tuple[int, ...] = (512, 128)  # discriminator hidden widths
    rw_gan_weight: float = 0.1  # weight of the discriminator's BCE loss
    rw_lr: float = 5e-4  # generator AdamW learning rate (betas 0.5, 0.9; weight decay 0.01)
    rw_disc_lr: float = 5e-5  # discriminator Adam learning rate (betas 0.5, 0.9)
    rw_batch: int = 128  # rewriter batch size (official hard-coded 128)
    rw_first_epochs: int = 200  # rewriter epochs in the first round
    rw_epochs: int = 20  # rewriter epochs in every later round (weights kept across rounds)
    leak_disc_grad: bool = False  # True: official update order, the lagged L_D gradient leaks into G
    rw_arch: str = "vq"  # vq: encoder -> codebook -> decoder | ae: no codebook | mlp: one ReLU hidden layer (ablations)
    rw_discriminator: bool = True  # False: no discriminator, no L_D (ablation)

    def check_rewriter(self) -> None:
        from ...core.errors import ConfigError

        if self.rw_arch not in ARCHS:
            raise ConfigError(f"rw_arch '{self.rw_arch}' unknown; fix: use one of {', '.join(ARCHS)}")


ARCHS = ("vq", "ae", "mlp")


class Block(nn.Module):
    """B(a -> b): y = W x + c; LayerNorm(y) + y. Xavier-uniform W, default bias."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__()
        self.lin, self.norm = nn.Linear(a, b), nn.LayerNorm(b)
        nn.init.xavier_uniform_(self.lin.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)  # (B, b)
        return self.norm(y) + y


def stack(widths: list[int]) -> nn.Sequential:
    return nn.Sequential(*[Block(a, b) for a, b in zip(widths[:-1], widths[1:])])


class Generator(nn.Module):
    """Prompt table, encoder, codebook and decoder; ``n_pairs`` prompts (one per source -> target pair)."""

    def __init__(self, dim: int, n_pairs: int, cfg: RewriterConfig) -> None:
        super().__init__()
        if cfg.rw_latent % cfg.rw_code_dim:
            from ...core.errors import ConfigError

            raise ConfigError(f"rw_latent {cfg.rw_latent} is not a multiple of rw_code_dim {cfg.rw_code_dim}")
        cfg.check_rewriter()
        self.cfg = cfg
        self.prompt = nn.Embedding(n_pairs, cfg.rw_prompt_dim)  # N(0, 1) init
        if cfg.rw_arch == "mlp":
            self.mlp = nn.Sequential(nn.Linear(dim + cfg.rw_prompt_dim, cfg.rw_hidden[0]), nn.ReLU(),
                                     nn.Linear(cfg.rw_hidden[0], dim))
            return
        self.encoder = stack([dim + cfg.rw_prompt_dim, *cfg.rw_hidden, cfg.rw_latent])
        if cfg.rw_arch == "vq":
            self.codebook = nn.Parameter(nn.init.xavier_normal_(torch.empty(cfg.rw_codebook, cfg.rw_code_dim)))
        self.decoder = stack([cfg.rw_latent, *cfg.rw_hidden, dim])

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(straight-through z_q (B, latent), VQ loss) for encoder output z (B, latent)."""
        flat = z.reshape(-1, self.cfg.rw_code_dim)  # (B * pieces, code_dim)
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T
                + self.codebook.pow(2).sum(1))  # (B * pieces, codebook)
        q = self.codebook.index_select(0, dist.argmin(1)).view_as(z)  # (B, latent); deterministic backward
        vq = F.mse_loss(z, q.detach()) + self.cfg.rw_beta * F.mse_loss(q, z.detach())
        return z + (q - z).detach(), vq

    def forward(self, x: torch.Tensor, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_hat (B, d), VQ loss) for source features x (B, d) and pair ids (B,)."""
        xp = torch.cat([x, self.prompt(pair)], 1)  # (B, d + prompt)
        if self.cfg.rw_arch == "mlp":
            return self.mlp(xp), xp.new_zeros(())  # (B, d)
        z = self.encoder(xp)  # (B, latent)
        zq, vq = self.quantise(z) if self.cfg.rw_arch == "vq" else (z, z.new_zeros(()))
        return self.decoder(zq), vq


class Discriminator(nn.Module):
    """B(d -> 512), B(512 -> 128), Linear(128 -> 1); returns logits (B,) (sigmoid lives in the BCE)."""

    def __init__(self, dim: int, cfg: RewriterConfig) -> None:
        super().__init__()
        self.body = stack([dim, *cfg.rw_disc_hidden])
        self.head = nn.Linear(cfg.rw_disc_hidden[-1], 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(y)).squeeze(1)
