"""R2MR's fidelity, ablation and GPU switches: each changes what it should and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r2mr.core.errors import ConfigError, DataError
from r2mr.models.r2mr.features import preprocess
from r2mr.models.r2mr.ops import maybe_compile
from r2mr.models.r2mr.reviewer import EdgePattern, consensus
from r2mr.runs.experiment import make_configs
from r2mr.training.runtime import set_tf32
from tests.test_r2mr_model import TINY_RW, build, make_ds


@pytest.fixture(scope="module")
def ds():
    return make_ds(40, 30, 200, {"text": 8, "image": 8}, seed=3)


def test_content_is_the_content_control_field() -> None:
    _, cfg, _ = make_configs("r2mr", {"content": "frozen"})
    assert cfg.content == "frozen"
    with pytest.raises(ConfigError, match="content"):
        make_configs("r2mr", {"content": "noise"})


def test_without_reviewer_scores_are_one_and_items_are_plain_features(ds) -> None:
    base, plain = build(ds, **TINY_RW), build(ds, use_reviewer=False, **TINY_RW)
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in base.state_dict().items())  # same parameters
    plain.train()
    s = plain.review()
    assert torch.equal(s, torch.ones(30, 2))
    feats = torch.stack([plain.features[m] for m in plain.modalities], 1)
    i0 = plain._items0(feats, s, None).view(30, 2, 8)
    assert torch.allclose(i0, torch.nn.functional.normalize(feats, dim=2), atol=1e-6)  # no h, no score
    loss = plain.loss(_batch())
    loss.backward()
    assert all(p.grad is None for p in plain.reviewer.parameters())  # the Reviewer takes no part
    assert plain.after_epoch(plain.cfg.rewrite_every) == {} and plain.rounds_done == 0  # nothing to select
    base.train()
    assert not torch.isclose(base.loss(_batch()), loss)  # the switch does change the objective


def _batch():
    from r2mr.data.sampler import Batch

    return Batch(torch.tensor([0, 1, 2, 2]), torch.tensor([3, 4, 5, 6]), torch.tensor([7, 8, 9, 10]))


def test_float16_reviewer_rounds_logits_and_sigmoids_to_half() -> None:
    g = torch.Generator().manual_seed(0)
    users, items = torch.randint(0, 20, (120,), generator=g), torch.randint(0, 15, (120,), generator=g)
    keys = torch.unique(users * 15 + items)
    pat = EdgePattern.build(keys // 15, keys % 15, 20, 15)
    a = (3 * torch.randn(20, 2, 6, generator=g)).requires_grad_()
    b = torch.randn(15, 6, generator=g)
    half, full = consensus(a, b, pat, "float16"), consensus(a, b, pat)
    logits = torch.einsum("ekr,er->ek", a.detach().half().float()[pat.i_col], b.half().float()[pat.items])
    p = torch.sigmoid(logits.half()).mean(1).float()  # float16 sigmoid and mean over K, as coded
    want = torch.zeros(15).index_add(0, pat.items, p) / pat.degree.clamp(min=1)
    assert half.dtype == torch.float32 and torch.allclose(half, want, atol=1e-6)
    assert not torch.equal(half, full) and torch.allclose(half, full, atol=2e-3)
    half.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


def test_float16_switch_changes_only_the_scores(ds) -> None:
    m32, m16 = build(ds, **TINY_RW).eval(), build(ds, reviewer_dtype="float16", **TINY_RW).eval()
    with torch.no_grad():
        s32, s16 = m32.review(), m16.review()
        assert not torch.equal(s32, s16) and torch.allclose(s32, s16, atol=2e-3)
        m16.review = lambda: s32  # same scores -> the same model
        assert all(torch.equal(x, y) for x, y in zip(m32.forward_all(), m16.forward_all()))
    with pytest.raises(ConfigError, match="reviewer_dtype"):
        make_configs("r2mr", {"reviewer_dtype": "bfloat16"})


def test_pca_image_only_reduces_the_image_modality_alone() -> None:
    rng = np.random.default_rng(0)
    feats = {"text": rng.normal(3.0, 1.0, (50, 6)).astype(np.float32),
             "image": rng.normal(3.0, 1.0, (50, 6)).astype(np.float32)}
    out = preprocess(feats, 6, "image_only", seed=0)
    assert np.allclose(out["text"], np.tanh(feats["text"]), atol=1e-6)  # tanh only
    assert abs(np.arctanh(out["image"]).mean()) < 1e-4  # PCA centres: the image is rotated and centred
    assert np.allclose(out["image"], preprocess(feats, 6, "all", seed=0)["image"])
    with pytest.raises(DataError, match="width 9"):  # text wider than d is not reduced under this rule
        preprocess({"text": feats["text"][:, :1].repeat(9, 1), "image": feats["image"]}, 6, "image_only")


def test_compile_and_tf32_switches() -> None:
    def fn(x):
        return x + 1
    assert maybe_compile(fn, "off") is fn
    with pytest.raises(ConfigError, match="compile"):
        make_configs("r2mr", {"compile": "max-autotune"})
    was = torch.backends.cuda.matmul.allow_tf32
    try:
        set_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        set_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = was
        torch.backends.cudnn.allow_tf32 = True


def test_rewrite_round_logs_one_timed_line_per_round(ds, caplog) -> None:
    model = build(ds, rw_first_epochs=1, **TINY_RW)
    with caplog.at_level("INFO", logger="r2mr.models"):
        model.rewrite_round(6)
    rw = [r.getMessage() for r in caplog.records if r.name == "r2mr.models.r2mr.rewriter"]
    rounds = [r.getMessage() for r in caplog.records if r.name == "r2mr.models.r2mr.model"]
    assert len(rw) == 1 and rw[0].startswith("rewriter: ") and rw[0].endswith(" s")
    assert len(rounds) == 1 and rounds[0].startswith("rewrite round 1 after epoch 6 done in ")


def test_rewriter_step_chooses_the_path_by_the_leak_flag(ds) -> None:
    plain, leaky = build(ds, **TINY_RW).rewriter, build(ds, leak_disc_grad=True, **TINY_RW).rewriter
    calls = []
    for rw in (plain, leaky):
        rw.step_plain = lambda *a, rw=rw: calls.append(("plain", rw))
        rw.step_leaky = lambda *a, rw=rw: calls.append(("leaky", rw))
        rw.step(None, None, None)
    assert calls == [("plain", plain), ("leaky", leaky)]


@pytest.mark.slow
def test_compiled_item_layer_matches_the_eager_one(ds) -> None:
    """compile=default (torch.compile of the gated item layer): loss and gradients within float order."""
    out = []
    for mode in ("off", "default"):
        model = build(ds, compile=mode, **TINY_RW).train()
        torch.manual_seed(1)
        loss = model.loss(_batch())
        loss.backward()
        out.append((loss.item(), model.features["text"].grad.clone()))
    (l0, g0), (l1, g1) = out
    assert abs(l0 - l1) <= 1e-5 * abs(l0) and torch.allclose(g0, g1, rtol=1e-5, atol=1e-7)
