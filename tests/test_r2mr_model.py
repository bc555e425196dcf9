"""R2MR recommender (spec 3, 5, 6, 8, 15): sizes, gating, propagation, loss, schedule, groups, memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from r2mr.data import Dataset, Split
from r2mr.data.sampler import Batch, BPRSampler
from r2mr.evaluation.epoch_selection import official_test_rule
from r2mr.models.r2mr.model import R2MR, resolve
from r2mr.models.r2mr.ops import gate, knn_weights, round_epochs
from r2mr.models.r2mr.reviewer import dense_consensus
from r2mr.models.r2mr.rewriter import rewrite_candidates
from r2mr.runs.experiment import make_configs
from r2mr.training.trainer import lr_factor
from tests.test_selection import LOGGED_TEST, as_history


def make_ds(n_users: int, n_items: int, n_edges: int, widths: dict[str, int], seed: int = 0,
            skip_items: tuple[int, ...] = ()) -> Dataset:
    """Random training edges (every user has one; items in ``skip_items`` have none) and N(0,1) features."""
    rng = np.random.default_rng(seed)
    allowed = np.setdiff1d(np.arange(n_items), skip_items)
    users = np.concatenate([np.arange(n_users), rng.integers(0, n_users, n_edges)])
    items = rng.choice(allowed, len(users))
    keys = np.unique(users * n_items + items)
    users, items = keys // n_items, keys % n_items
    tiny = Split(users[:5].copy(), ((items[:5] + 1) % n_items).copy())
    feats = {m: rng.normal(size=(n_items, w)).astype(np.float32) for m, w in widths.items()}
    return Dataset("toy", n_users, n_items, Split(users, items), tiny, tiny, feats)


TINY_RW = dict(rw_hidden=(8,), rw_latent=8, rw_codebook=8, rw_code_dim=4)  # a fast rewriter for unit tests


def build(ds: Dataset, **over) -> R2MR:
    _, mcfg, _ = make_configs("r2mr", over)
    torch.manual_seed(0)
    return R2MR(ds, mcfg)


def test_parameter_count_on_clothing_shapes() -> None:
    """2 * 23,033 * 384 + 3 * 39,387 * 384 + 3 * (384^2 + 384) without the four dead layers (spec 3)."""
    ds = make_ds(39_387, 23_033, 1000, {"text": 384, "image": 384})
    model = build(ds, knn_hop=False)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n == 63_506_688
    assert sum(p.numel() for p in model.rewriter.gen.parameters()) == 8_936_064  # not counted above
    assert sum(p.numel() for p in model.rewriter.disc.parameters()) == 264_193


def test_variant_presets_and_explicit_values_win() -> None:
    _, off, _ = make_configs("r2mr")
    off = resolve(off)
    fields = lambda c: (c.n_perspectives, c.perspective_split, c.h_source, c.accept_rule, c.knn_hop)  # noqa: E731
    assert fields(off) == (1, True, "users", "eta", True)
    _, pap, _ = make_configs("r2mr", {"variant": "paper"})
    pap = resolve(pap)
    assert fields(pap) == (3, False, "item_id", "improve", False)
    _, mix, _ = make_configs("r2mr", {"n_perspectives": "2", "variant": "paper", "knn_hop": "true"})
    assert (resolve(mix).n_perspectives, resolve(mix).knn_hop, resolve(mix).h_source) == (2, True, "item_id")


def test_train_defaults_lr_schedule_and_official_stop_rule() -> None:
    _, _, t = make_configs("r2mr")
    assert (t.batch_size, t.optimizer, t.weight_decay, t.lr) == (1024, "adamw", 0.01, 1e-3)
    assert (t.lr_schedule, t.lr_linear_epochs, t.stop_rule, t.max_epochs, t.patience) == ("linear", 70, "both", 200, 20)
    assert [lr_factor(e, t) for e in (0, 35, 70, 73)] == [1.0, 0.5, 0.0, 0.0]  # clamped by default
    _, _, raw = make_configs("r2mr", {"lr_clamp": False})
    assert lr_factor(73, raw) * raw.lr == pytest.approx(-3 / 70 * 1e-3)  # the official negative LR (spec 6.3)
    sel = official_test_rule(as_history(LOGGED_TEST), t.official_stopping_step)
    assert (sel.stop_epoch, sel.best_epoch) == (73, 63)


def dense_adj(ds: Dataset) -> torch.Tensor:
    r = torch.zeros(ds.n_users, ds.n_items)
    r[torch.from_numpy(ds.train.users), torch.from_numpy(ds.train.items)] = 1.0
    du, di = r.sum(1) + 1e-8, r.sum(0) + 1e-8
    return du.pow(-0.5)[:, None] * r * di.pow(-0.5)[None, :]  # (U, I)


def test_gating_and_propagation_closed_form() -> None:
    """Eval mode: h = tanh(A^T Z); e~ = (s + 0.001) e + (1 - s) h; U = U0 + A I0 + A A^T U0,
    I = I0 + A^T U0 + A^T A I0 per modality, concatenated, plus the kNN hop item + M item."""
    ds = make_ds(12, 9, 25, {"text": 6, "image": 10}, skip_items=(4,))
    model = build(ds, knn_k=2).eval()
    a = dense_adj(ds)
    with torch.no_grad():
        h = model.fallback()
        assert torch.allclose(h, torch.tanh(a.T @ model.user_id), atol=1e-6) and h[4].abs().max() == 0
        s = model.review()
        assert list(model.features) == list(model.prefs) == model.modalities == ["text", "image"]
        views, mask = model.reviewer.user_views(model.user_id), (a.T > 0).float()
        for j, m in enumerate(model.modalities):  # column j is modality j's own score (not another modality's)
            want = dense_consensus(views, model.reviewer.item_maps[m](model.features[m]), mask)
            assert torch.allclose(s[:, j], want, atol=1e-6)
        e = model.features["text"]
        assert torch.equal(gate(e, s[:, 0], h, 1e-3), (s[:, :1] + 1e-3) * e + (1 - s[:, :1]) * h)
        assert s[4].abs().max() == 0
        users, items = model.final_embeddings()
        u0 = torch.cat([F.normalize(model.prefs[m]) for m in ("text", "image")], 1)
        i0 = torch.cat([F.normalize(gate(model.features[m], s[:, j], h, 1e-3))
                        for j, m in enumerate(("text", "image"))], 1)
        want_u = u0 + a @ i0 + a @ a.T @ u0
        want_i = i0 + a.T @ u0 + a.T @ a @ i0
        knn = model.knn.to_dense()
        assert torch.allclose(users, want_u, atol=1e-5)
        assert torch.allclose(items, want_i + knn @ want_i, atol=1e-5)
    assert torch.allclose(knn.sum(1), torch.ones(9), atol=1e-6)  # binary k-NN rows of 1/k, mixed 0.1 / 0.9


def test_knn_weights_rule() -> None:
    assert knn_weights(["text", "image"], 0.1) == {"text": 0.9, "image": 0.1}
    assert knn_weights(["image", "audio"], 0.1) == {"image": 0.1, "audio": 0.9}
    assert knn_weights(["text", "image", "audio"], 0.2) == pytest.approx({"text": 0.4, "image": 0.2, "audio": 0.4})
    assert knn_weights(["text", "audio"], 0.1) == {"text": 0.5, "audio": 0.5}


def test_loss_by_hand() -> None:
    """Natural-log BPR + 1e-4 * 1/2 * sum ||.||^2 / 1024 on final vectors (spec 6.2); dropout 0."""
    ds = make_ds(12, 9, 25, {"text": 6, "image": 10})
    model = build(ds, dropout=0.0)
    b = Batch(torch.tensor([0, 1, 1]), torch.tensor([2, 3, 3]), torch.tensor([5, 6, 7]))
    users, items = model.final_embeddings()
    u, i, j = users[b.users], items[b.pos], items[b.neg]
    want = -torch.log(torch.sigmoid((u * i).sum(1) - (u * j).sum(1))).mean()
    want = want + 1e-4 * 0.5 * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / 1024
    assert model.loss(b).item() == pytest.approx(want.item(), rel=1e-6)


def test_round_epochs_and_rewriter_epochs(monkeypatch) -> None:
    assert round_epochs(6, 10, 200) == [6, 12, 18, 24, 30, 36, 42, 48, 54, 60]
    model = build(make_ds(12, 9, 25, {"text": 6, "image": 10}), **TINY_RW)
    calls = []

    def fake_round(x, pair, y, epochs):
        calls.append(epochs)
        model.rewriter.steps += 1
        return {}
    monkeypatch.setattr(model.rewriter, "train_round", fake_round)
    views = model.reviewer.user_views(model.user_id)
    monkeypatch.setattr(model, "eval_scores", lambda: (torch.full((9, 2), 0.9), views))
    fired = [e for e in range(80) if model.after_epoch(e)]
    assert fired == round_epochs(6, 10, 80) and calls == [200] + [20] * 9


def test_group_selection_ge_and_lt() -> None:
    s = torch.tensor([[0.5, 0.4999], [0.5, 0.5], [0.1, 0.2], [0.3, 0.7]])
    items, src, tgt = rewrite_candidates(s, 0.5)
    assert items.tolist() == [0, 3] and src.tolist() == [0, 1] and tgt.tolist() == [1, 0]
    s3 = torch.tensor([[0.6, 0.1, 0.8], [0.1, 0.2, 0.9]])  # three modalities: best high source feeds each low
    items, src, tgt = rewrite_candidates(s3, 0.5)
    assert items.tolist() == [0, 1, 1] and src.tolist() == [2, 2, 2] and tgt.tolist() == [1, 0, 1]


@pytest.mark.parametrize("rule", ["eta", "improve"])
def test_acceptance_overwrites_only_accepted_rows(rule: str, monkeypatch) -> None:
    model = build(make_ds(12, 9, 25, {"text": 6, "image": 10}), accept_rule=rule, rw_first_epochs=1, **TINY_RW)
    current = torch.tensor([[0.9, 0.2], [0.9, 0.45], [0.9, 0.3]] + [[0.9, 0.9]] * 6)  # items 0-2: image is weak
    monkeypatch.setattr(model, "eval_scores", lambda: (current, model.reviewer.user_views(model.user_id)))
    monkeypatch.setattr(model.reviewer, "score_rows", lambda a, m, idx, x, *_: torch.tensor([0.5, 0.4, 0.51]))
    before = model.features["image"].detach().clone()
    stats = model.rewrite_round(6)
    keep = [False, False, True] if rule == "eta" else [True, False, True]  # > 0.5 strictly, or > the old score
    changed = (model.features["image"].detach() != before).any(1)
    assert changed[:3].tolist() == keep and not changed[3:].any()
    assert model.rewritten["image"][:3].tolist() == keep and not model.rewritten["text"].any()
    d = stats["directions"]["text->image"]
    assert (d["candidates"], d["accepted"], stats["n_high"], stats["n_disparity"]) == (3, sum(keep), 6, 3)


@pytest.mark.parametrize("value", [0.9, 0.1])
def test_empty_groups_do_not_crash(value: float, monkeypatch) -> None:
    """All high: no disparity item; all low: no training pair (and nothing generated untrained)."""
    model = build(make_ds(12, 9, 25, {"text": 6, "image": 10}), rw_first_epochs=1, **TINY_RW)
    views = model.reviewer.user_views(model.user_id)
    monkeypatch.setattr(model, "eval_scores", lambda: (torch.full((9, 2), value), views))
    stats = model.rewrite_round(6)
    assert stats["directions"] == {} and model.rounds_done == 1


class NumelRecorder(TorchDispatchMode):
    """Records the element count of every tensor produced by an ATen op."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_no_users_by_items_tensor_in_a_training_step(variant: str) -> None:
    ds = make_ds(2003, 1499, 6000, {"text": 16, "image": 24})  # n_users * n_items = 3,002,497
    model = build(ds, variant=variant, knn_hop=True)
    batch = next(iter(BPRSampler(ds, 1024, seed=0)))
    rec = NumelRecorder()
    with rec:
        model.loss(batch).backward()
    assert 0 < rec.largest < ds.n_users * ds.n_items  # the largest are O(E * K * r) edge chunks
    dense = NumelRecorder()  # positive control: the official dense reviewer trips the check
    with dense, torch.no_grad():
        a = model.reviewer.user_views(model.user_id)
        dense_consensus(a, model.reviewer.item_maps["text"](model.features["text"]), torch.ones(ds.n_items, ds.n_users))
    assert dense.largest >= ds.n_users * ds.n_items


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    """Loss, gradients and Reviewer scores agree across devices; a rewrite round runs on CUDA."""
    ds = make_ds(300, 200, 1500, {"text": 16, "image": 24})
    cpu, gpu = (build(ds, dropout=0.0, rw_first_epochs=2, **TINY_RW) for _ in range(2))  # same seed
    gpu.to("cuda")
    batch = next(iter(BPRSampler(ds, 256, seed=0)))
    losses = [m.loss(batch.to(dev)) for m, dev in ((cpu, "cpu"), (gpu, "cuda"))]
    for loss in losses:
        loss.backward()
    assert losses[0].item() == pytest.approx(losses[1].item(), rel=1e-4)
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        assert torch.allclose(p.grad, q.grad.cpu(), atol=1e-5, rtol=1e-3), name
    assert torch.allclose(cpu.eval_scores()[0], gpu.eval_scores()[0].cpu(), atol=1e-5)
    stats = gpu.rewrite_round(6)
    assert stats["round"] == 1 and gpu.features["text"].is_cuda
