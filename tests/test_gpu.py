"""CUDA against CPU for every registered model except R2MR (which has its own in test_r2mr_model.py).

Deselected by default (marker ``gpu``); run on a machine with a GPU: ``pytest -m gpu tests/``. Stated
tolerance: losses agree to 1e-4 relative, gradients and scores to 1e-3 relative / 1e-5 absolute (float32,
different summation orders); a short training run on CUDA gives finite metrics.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from r2mr.data import load_dataset
from r2mr.data.sampler import BPRSampler
from r2mr.models import MODELS
from r2mr.runs import experiment
from r2mr.runs.experiment import make_configs

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
NAMES = [m for m in MODELS if m != "r2mr"]
NO_RANDOMNESS = {"bm3": {"dropout": 0.0}, "freedom": {"dropout": 0.0}}  # the devices draw different masks


@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name: str, small_root: Path, tmp_path: Path) -> None:
    ds = load_dataset("small", small_root)
    cls, mcfg, tcfg = make_configs(name, {"batch_size": 256, **NO_RANDOMNESS.get(name, {})})
    kw = {"cache_dir": tmp_path} if experiment._wants_cache_dir(cls) else {}
    cpu, gpu = (torch.manual_seed(0) and cls(ds, mcfg, **kw) for _ in range(2))  # same seed, same weights
    gpu.to("cuda")
    batch = next(iter(BPRSampler(ds, 256, negatives=tcfg.negatives, seed=0)))
    for m in (cpu, gpu):
        m.eval()  # no dropout: the two devices draw different random masks
    losses = [m.loss(batch.to(dev)) for m, dev in ((cpu, "cpu"), (gpu, "cuda"))]
    for loss in losses:
        loss.backward()
    assert losses[0].item() == pytest.approx(losses[1].item(), rel=1e-4)
    for (pname, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad.cpu(), atol=1e-5, rtol=1e-3), pname
    with torch.no_grad():
        users = torch.arange(min(64, ds.n_users))
        a, b = cpu.scorer()(users), gpu.scorer()(users.to("cuda")).cpu()
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_training_on_cuda(name: str, small_root: Path, tmp_path: Path) -> None:
    res = experiment.train(name, "small", data_dir=small_root, device="cuda", max_epochs=2, run_dir=tmp_path / "r",
                           progress=False, overrides={"batch_size": 256})
    assert res["device"] == "cuda"
    assert all(0.0 <= v <= 1.0 for v in res["test"].values())


def test_r2mr_tf32_and_compile_switches_stay_within_tolerance() -> None:
    """On a GPU: tf32=True moves the loss by < 1e-2 relative; compile=reduce-overhead (CUDA graphs) by < 1e-4."""
    from r2mr.data.sampler import Batch
    from r2mr.training.runtime import run_switches
    from tests.test_r2mr_model import TINY_RW, build, make_ds

    ds = make_ds(400, 300, 4000, {"text": 64, "image": 64}, seed=3)
    batch = Batch(torch.arange(64), torch.arange(64) % 300, (torch.arange(64) * 7 + 1) % 300).to("cuda")
    losses = {}
    for name, over in {"plain": {}, "tf32": {"tf32": True}, "compile": {"compile": "reduce-overhead"}}.items():
        model = build(ds, **over, **TINY_RW).to("cuda").eval()
        with torch.no_grad(), run_switches(tf32=model.cfg.tf32):  # as the trainer sets them for a run
            losses[name] = model.loss(batch).item()
    assert not torch.backends.cuda.matmul.allow_tf32  # put back after the run
    assert abs(losses["tf32"] - losses["plain"]) < 1e-2 * abs(losses["plain"])
    assert abs(losses["compile"] - losses["plain"]) < 1e-4 * abs(losses["plain"])
