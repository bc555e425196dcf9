"""Rewriter ablation switches (notebook 02): rw_arch = vq | ae | mlp and rw_discriminator."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from r2mr.core.errors import ConfigError
from r2mr.models.r2mr.model import R2MRConfig
from r2mr.models.r2mr.networks import Generator, RewriterConfig
from r2mr.models.r2mr.rewriter import Rewriter

SMALL = RewriterConfig(rw_prompt_dim=4, rw_hidden=(16, 32), rw_latent=16, rw_codebook=32, rw_code_dim=4,
                       rw_disc_hidden=(8, 4), rw_batch=8)


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(24, 6, generator=g), torch.randint(0, 2, (24,), generator=g),
            torch.tanh(torch.randn(24, 6, generator=g)))


@pytest.mark.parametrize("arch", ["vq", "ae", "mlp"])
def test_each_architecture_maps_and_learns(arch: str) -> None:
    torch.manual_seed(0)
    rw = Rewriter(6, ["text", "image"], dataclasses.replace(SMALL, rw_arch=arch))
    x, pair, y = data()
    first = rw.train_round(x, pair, y, 1)["rec"]
    last = rw.train_round(x, pair, y, 40)["rec"]
    assert last < first and rw.generate(x, pair).shape == (24, 6)


def test_ae_and_mlp_have_no_codebook_and_no_vq_loss() -> None:
    x, pair, _ = data()
    ae, mlp = (Generator(6, 2, dataclasses.replace(SMALL, rw_arch=a)) for a in ("ae", "mlp"))
    assert not hasattr(ae, "codebook") and hasattr(ae, "encoder") and hasattr(ae, "decoder")
    assert not hasattr(mlp, "codebook") and not hasattr(mlp, "encoder")
    assert [m.out_features for m in mlp.mlp if isinstance(m, torch.nn.Linear)] == [16, 6]  # d + prompt -> 16 -> d
    for g in (ae, mlp):
        assert g(x, pair)[1].item() == 0.0


def test_no_discriminator_leaves_the_default_generator_unchanged() -> None:
    """Without the leak, D never reaches G: dropping it gives the same generator, bit for bit."""
    x, pair, y = data()
    torch.manual_seed(0)
    full = Rewriter(6, ["text", "image"], SMALL)
    torch.manual_seed(0)
    bare = Rewriter(6, ["text", "image"], dataclasses.replace(SMALL, rw_discriminator=False))
    assert bare.disc is None and bare.opt_d is None
    torch.manual_seed(1)
    full.train_round(x, pair, y, 3)
    torch.manual_seed(1)
    losses = bare.train_round(x, pair, y, 3)
    assert losses["disc"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(full.gen.parameters(), bare.gen.parameters()))
    restored = Rewriter(6, ["text", "image"], dataclasses.replace(SMALL, rw_discriminator=False))
    restored.load_state_dict(bare.state_dict())
    assert torch.equal(restored.generate(x, pair), bare.generate(x, pair))


def test_unknown_architecture_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="config key 'rw_arch': gan is not allowed"):
        R2MRConfig(rw_arch="gan")
