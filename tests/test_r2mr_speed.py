"""The faster R2MR step computes what b44c64a computed: a frozen reference made by running that commit
(tests/fixtures/r2mr_reference.json, written by benchmarks/make_r2mr_reference.py) and the plain
propagation kept in r2mr.models.r2mr.propagate_sum."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks.make_r2mr_reference import CASES, EPOCHS, TRAIN
from r2mr.data import load_dataset
from r2mr.data.graph import csr_rows, spmm, to_torch, ui_norm
from r2mr.models.r2mr.ops import layer0, propagate_sum
from r2mr.runs.experiment import make_configs
from r2mr.training.runtime import seed_everything
from r2mr.training.trainer import Trainer

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "r2mr_reference.json").read_text())
REL = 1e-5


def close(a: float, b: float, rel: float = REL) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-7)


@pytest.fixture(scope="module")
def small(small_root: Path):
    return load_dataset("small", small_root)


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_step_loss_and_gradients_match_the_reference(small, case: str) -> None:
    ref = REFERENCE["cases"][case]["one_step"]
    cls, mcfg, tcfg = make_configs("r2mr", {**TRAIN, **CASES[case]}, max_epochs=1)
    seed_everything(tcfg.seed)
    model = cls(small, mcfg)
    trainer = Trainer(model, small, tcfg, "cpu", None, progress=False)
    model.train()
    loss = model.loss(next(iter(trainer.sampler)))
    loss.backward()
    assert close(loss.item(), ref["loss"])
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == set(ref["grads"])
    for name, (total, absolute) in ref["grads"].items():
        assert close(float(grads[name].abs().sum()), absolute), name
        got = float(grads[name].sum())
        assert close(got, total, rel=1e-4) or abs(got - total) < 1e-6 * absolute, name


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixed_seed_run_ends_where_the_reference_ended(small, case: str) -> None:
    ref = REFERENCE["cases"][case]["run"]
    cls, mcfg, tcfg = make_configs("r2mr", {**TRAIN, **CASES[case]}, max_epochs=EPOCHS)
    seed_everything(tcfg.seed)
    res = Trainer(cls(small, mcfg), small, tcfg, "cpu", None, progress=False).fit()
    assert res["best_epoch"] == ref["best_epoch"]
    for got, want in zip(res["history"], ref["history"], strict=True):
        assert close(got["loss"], want["loss"]), got["epoch"]
        for split in ("valid", "test"):
            assert {k: round(v, 4) for k, v in got[split].items()} == {k: round(v, 4) for k, v in want[split].items()}


def test_row_restricted_product_equals_the_full_one_and_its_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    users, items = torch.randint(0, 40, (300,), generator=g), torch.randint(0, 25, (300,), generator=g)
    a = ui_norm(users.numpy(), items.numpy(), 40, 25)
    adj, adj_t = to_torch(a), to_torch(a.T.tocsr())
    rows = torch.tensor([1, 5, 6, 30, 39])
    x = torch.randn(25, 7, generator=g, requires_grad=True)
    full = spmm(adj, x, adj_t).index_select(0, rows)
    (full * torch.arange(35.0).view(5, 7)).sum().backward()
    gx, x.grad = x.grad.clone(), None
    sub, sub_t = csr_rows(adj, rows)
    part = spmm(sub, x, sub_t)
    (part * torch.arange(35.0).view(5, 7)).sum().backward()
    assert torch.equal(part, full) and torch.equal(x.grad, gx)


def test_fused_propagation_equals_the_plain_layer_sums(small) -> None:
    cls, mcfg, _ = make_configs("r2mr", {**TRAIN, "knn_hop": False})
    torch.manual_seed(0)
    model = cls(small, mcfg).eval()
    with torch.no_grad():
        users, items, s = model.forward_all()
        u0 = layer0([model.prefs[m] for m in model.modalities])
        i0 = model._items0(torch.stack([model.features[m] for m in model.modalities], 1), s, model.fallback())
        su, si = propagate_sum(model.adj, model.adj_t, u0, i0, mcfg.n_layers)
    assert torch.equal(users, su) and torch.equal(items, si)
