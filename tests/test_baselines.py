"""Multimodal baselines (VBPR, LATTICE, FREEDOM, BM3, MGCN): training, scores, graphs against hand-checked
examples, kNN caching, CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from r2mr.cli import main as cli
from r2mr.data import Dataset, load_dataset
from r2mr.data.graph import Edges, cached_knn, knn_edges, knn_graph, rw_adj_self_loops, ui_norm
from r2mr.data.sampler import BPRSampler
from r2mr.models import MODELS
from r2mr.models.freedom import frozen_item_graph, modality_weights, prune_edges, pruning_probs
from r2mr.models.lattice import item_graph, learned_graph
from r2mr.models.losses import info_nce
from r2mr.models.mgcn import fuse
from r2mr.runs import experiment
from r2mr.runs.experiment import make_configs
from tests.test_train import strip_timing

BASELINES = ["vbpr", "lattice", "freedom", "bm3", "mgcn"]
MODALITY_SETS = [("text", "image"), ("image",), ("image", "audio")]


@pytest.fixture(scope="module")
def small(small_root: Path) -> Dataset:
    return load_dataset("small", small_root)


def with_modalities(ds: Dataset, names: tuple[str, ...]) -> Dataset:
    """``ds`` with the given modalities; "audio" is a fixed random 16-d projection of the image features."""
    feats = dict(ds.features)
    rng = np.random.default_rng(1)
    feats["audio"] = (feats["image"] @ rng.normal(size=(feats["image"].shape[1], 16))).astype(np.float32)
    return dataclasses.replace(ds, features={m: feats[m] for m in names})


def build(name: str, ds: Dataset, tmp_path: Path | None = None, **overrides):
    cls, mcfg, tcfg = make_configs(name, overrides)
    torch.manual_seed(0)
    kw = {"cache_dir": tmp_path} if experiment._wants_cache_dir(cls) else {}
    return cls(ds, mcfg, **kw), tcfg


# -- training and scores -----------------------------------------------------------------------------
@pytest.mark.parametrize("mods", MODALITY_SETS, ids="+".join)
@pytest.mark.parametrize("name", BASELINES)
def test_loss_decreases_and_scores_shape(name: str, mods: tuple[str, ...], small: Dataset, tmp_path: Path) -> None:
    ds = with_modalities(small, mods)
    model, tcfg = build(name, ds, tmp_path)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    sampler = BPRSampler(ds, 1024, negatives=tcfg.negatives, seed=0)
    epoch_loss = []
    for epoch in range(8):
        model.train()
        model.on_epoch_start(epoch)
        total = 0.0
        for b in sampler:
            loss = model.loss(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        epoch_loss.append(total / len(sampler))
    assert epoch_loss[-1] < 0.9 * epoch_loss[0], epoch_loss
    model.eval()
    with torch.no_grad():
        s = model.scorer()(torch.tensor([0, 1, 2, 5]))
    assert s.shape == (4, ds.n_items) and torch.isfinite(s).all()


def test_registry_and_train_defaults() -> None:
    assert set(BASELINES) <= set(MODELS)
    assert all(MODELS[n].needs_features for n in BASELINES)
    assert make_configs("bm3")[2].negatives is False
    for n in ("lattice", "mgcn"):
        t = make_configs(n)[2]
        assert (t.lr_decay, t.lr_decay_every) == (0.96, 50)
    assert make_configs("bm3", dataset="sports")[1].reg_weight == 0.01
    assert make_configs("bm3", dataset="baby")[1].reg_weight == 0.1


def test_raw_feature_tables_trainable(small: Dataset, tmp_path: Path) -> None:
    for name in ("lattice", "freedom", "bm3", "mgcn"):
        model, _ = build(name, small, tmp_path)
        assert all(p.requires_grad for p in model.feats.values()), name
    vbpr, _ = build("vbpr", small)
    assert "content" in dict(vbpr.named_buffers())  # VBPR: fixed features


# -- shared graph maths against hand-checked examples -------------------------------------------------
def test_weighted_knn_hand_example() -> None:
    """cos(0,1) = 0.6, cos(1,2) = 0.8, cos(0,2) = 0; k = 2 keeps self + best; row sums 1.6, 1.8, 1.8."""
    x = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], np.float32)
    g = knn_graph(x, k=2, weighted=True).toarray()
    d = np.array([1.6, 1.8, 1.8])
    s = np.array([[1, 0.6, 0], [0, 1, 0.8], [0, 0.8, 1]])
    assert np.allclose(g, s / np.sqrt(np.outer(d, d)), atol=1e-6)


def test_freedom_binary_knn_mix_hand_example() -> None:
    """Image pairs items {0,1},{2,3}; text pairs {0,2},{1,3}; each kNN-B entry is 1/2 (k = 2), so
    S = 0.1 * image + 0.9 * text has 0.5 on the diagonal, 0.05 on image-only and 0.45 on text-only edges."""
    image = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    text = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9]], np.float32)
    s = frozen_item_graph({"text": text, "image": image}, k=2, image_weight=0.1).toarray()
    expect = np.array([[.5, .05, .45, 0], [.05, .5, 0, .45], [.45, 0, .5, .05], [0, .45, .05, .5]])
    assert np.allclose(s, expect)


def test_modality_weights() -> None:
    assert modality_weights(["text", "image"], 0.1) == pytest.approx([0.9, 0.1])
    assert modality_weights(["image", "audio"], 0.1) == pytest.approx([0.1, 0.9])
    assert modality_weights(["text", "image", "audio"], 0.1) == pytest.approx([0.45, 0.1, 0.45])
    assert modality_weights(["image"], 0.1) == [1.0]
    assert modality_weights(["text", "audio"], 0.1) == pytest.approx([0.5, 0.5])


def test_lattice_learned_graph_mix_hand_example() -> None:
    """h1: the weighted example above; h2: items 0 and 1 identical, 2 orthogonal. With w = (1/4, 3/4):
    L = [[1, .9, 0], [.75, 1, .2], [0, .2, 1]] (row sums 1.9, 1.95, 1.2), L_hat = D^-1/2 L D^-1/2 and
    G = 0.1 L_hat + 0.9 (w1 O1 + w2 O2)."""
    h1 = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], requires_grad=True)
    h2 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    logits = torch.tensor([0.0, float(np.log(3.0))], requires_grad=True)  # softmax -> (1/4, 3/4)
    w = torch.softmax(logits, 0)
    lhat = learned_graph([h1, h2], w, k=2)
    big_l = np.array([[1, .9, 0], [.75, 1, .2], [0, .2, 1]])
    d = np.array([1.9, 1.95, 1.2])
    expect_l = big_l / np.sqrt(np.outer(d, d))
    assert np.allclose(lhat.to_scipy().toarray(), expect_l, atol=1e-6)
    o1, o2 = np.eye(3), np.full((3, 3), 1 / 3)
    originals = [Edges.from_scipy(sp.csr_matrix(o)) for o in (o1, o2)]
    g = item_graph(lhat, originals, w, lam=0.9)
    assert np.allclose(g.to_scipy().toarray(), 0.1 * expect_l + 0.9 * (0.25 * o1 + 0.75 * o2), atol=1e-6)
    g.matmul(torch.ones(3, 2)).sum().backward()  # gradients reach the projections and the modality logits
    assert h1.grad is not None and h1.grad.abs().sum() > 0 and logits.grad.abs().sum() > 0


def test_knn_edges_match_dense_topk_values_and_gradient() -> None:
    """The sparse learned graph equals the dense recipe (cosine matrix -> top-k -> scatter -> sym-normalise)."""
    torch.manual_seed(0)
    h = torch.randn(30, 8, requires_grad=True)
    q = torch.randn(30, 4)
    sparse = knn_edges(h, 5).sym_norm().matmul(q)
    gs = torch.autograd.grad(sparse.sum(), h)[0]
    hn = torch.nn.functional.normalize(h, dim=1)
    sim = hn @ hn.T  # (30, 30)
    v, i = sim.topk(5, dim=1)
    dense = torch.zeros_like(sim).scatter(1, i, v)
    inv = dense.sum(1).pow(-0.5)
    ref = (inv[:, None] * dense * inv[None, :]) @ q
    gd = torch.autograd.grad(ref.sum(), h)[0]
    assert torch.allclose(sparse, ref, atol=1e-5) and torch.allclose(gs, gd, atol=1e-5)


def test_lattice_rw_adjacency_hand_example() -> None:
    """One edge (u0, i0) plus an isolated item i1: D~^{-1}(A + I) = [[.5, .5, 0], [.5, .5, 0], [0, 0, 1]]."""
    a = rw_adj_self_loops(np.array([0]), np.array([0]), 1, 2).toarray()
    assert np.allclose(a, [[.5, .5, 0], [.5, .5, 0], [0, 0, 1]])


def test_lattice_graph_gradient_only_on_first_batch(small: Dataset, tmp_path: Path) -> None:
    model, _ = build("lattice", small, tmp_path)
    batches = list(BPRSampler(small, 1024, seed=0))

    def proj_grad(b) -> bool:
        model.zero_grad(set_to_none=True)
        model.loss(b).backward()
        return model.proj["image"].weight.grad is not None

    model.on_epoch_start(0)
    first = model.loss(batches[0]).item()  # builds G (edge list with gradients)
    assert model.loss(batches[0]).item() == pytest.approx(first, abs=1e-6)  # the stored detached CSR copy
    model.on_epoch_start(0)
    assert proj_grad(batches[0]) and not proj_grad(batches[1])  # detached after the first batch
    model.on_epoch_start(1)
    assert proj_grad(batches[2])


def test_mgcn_r_hat_hand_example() -> None:
    """R_hat_ui = 1/sqrt(d_u d_i); user 2 and item 2 have no edges and stay 0 (no inf)."""
    r = ui_norm(np.array([0, 0, 1]), np.array([0, 1, 1]), 3, 3, eps=0.0).toarray()
    assert np.allclose(r, [[2 ** -0.5, 0.5, 0], [0, 2 ** -0.5, 0], [0, 0, 0]])


def test_mgcn_fuser_formula() -> None:
    """Identical views: common = view and the specific parts vanish, so side = view / (M + 1)."""
    torch.manual_seed(0)
    v = torch.randn(5, 4)
    query, prefer = torch.nn.Linear(4, 1), [torch.nn.Linear(4, 4) for _ in range(2)]
    assert torch.allclose(fuse(torch.stack([v, v]), torch.randn(5, 4), query, prefer), v / 3, atol=1e-6)
    assert torch.allclose(fuse(v[None], torch.randn(5, 4), query, prefer[:1]), v / 2, atol=1e-6)


def test_info_nce_matches_formula() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 3), torch.randn(6, 3)
    xn, yn = x / x.norm(dim=1, keepdim=True), y / y.norm(dim=1, keepdim=True)
    ref = np.mean([-np.log(np.exp(float(xn[b] @ yn[b]) / 0.2) / sum(np.exp(float(xn[b] @ yn[c]) / 0.2)
                                                                     for c in range(6))) for b in range(6)])
    assert info_nce(x, y, 0.2).item() == pytest.approx(ref, rel=1e-5)


# -- FREEDOM's degree-sensitive pruning ------------------------------------------------------------------
def test_freedom_pruning_probabilities_hand_example() -> None:
    """Edges (u0,i0), (u0,i1), (u1,i1): degrees u (2, 1), i (1, 2) -> weights 1/sqrt2, 1/2, 1/sqrt2."""
    p = pruning_probs(np.array([0, 0, 1]), np.array([0, 1, 1]), 2, 2).numpy()
    w = np.array([2 ** -0.5, 0.5, 2 ** -0.5])
    assert np.allclose(p, w / w.sum(), atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    draws = np.bincount([int(prune_edges(torch.from_numpy(p), 2 / 3, gen)[0]) for _ in range(3000)], minlength=3)
    assert np.allclose(draws / 3000, w / w.sum(), atol=0.03)  # one edge kept (floor(3 / 3)), drawn by weight
    assert len(prune_edges(torch.from_numpy(p), 0.0)) == 3


def test_freedom_pruned_graph_renormalised_and_eval_uses_full_graph(toy_root: Path) -> None:
    ds = load_dataset("toy", toy_root)
    model, _ = build("freedom", ds, None, knn_k=2, dropout=0.5)
    torch.manual_seed(3)
    model.on_epoch_start(0)
    a = model.pruned.to_dense().numpy()
    r = a[: ds.n_users, ds.n_users:]  # (U, I) block of the pruned graph
    kept_u, kept_i = np.nonzero(r)
    assert len(kept_u) == int(len(ds.train) * 0.5)
    assert set(zip(kept_u, kept_i)) <= set(zip(ds.train.users, ds.train.items))
    du, di = np.bincount(kept_u, minlength=ds.n_users), np.bincount(kept_i, minlength=ds.n_items)
    assert np.allclose(r[kept_u, kept_i], 1 / np.sqrt(du[kept_u] * di[kept_i]), atol=1e-5)
    assert np.allclose(a, a.T)
    model.eval()
    s1 = model.scorer()(torch.arange(ds.n_users))
    model.on_epoch_start(1)  # a new pruned graph must not change evaluation
    assert torch.equal(s1, model.scorer()(torch.arange(ds.n_users)))


# -- kNN cache -------------------------------------------------------------------------------------------
def test_knn_cache_written_reused_and_keyed_by_features(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    g = cached_knn(x, 3, True, tmp_path / "cache")
    files = list((tmp_path / "cache").glob("*.npz"))
    assert len(files) == 1
    import r2mr.data.graph as graph

    monkeypatch.setattr(graph, "knn_graph", lambda *a, **k: pytest.fail("cache not reused"))
    assert (cached_knn(x, 3, True, tmp_path / "cache") != g).nnz == 0
    monkeypatch.undo()
    cached_knn(x + 1.0, 3, True, tmp_path / "cache")  # other features -> another file
    cached_knn(x, 4, True, tmp_path / "cache")  # other k -> another file
    cached_knn(x, 3, False, tmp_path / "cache")  # binary -> another file
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4


def test_models_cache_graphs_under_cache_dir(small: Dataset, tmp_path: Path) -> None:
    build("mgcn", small, tmp_path / "c")  # kNN-W per modality
    assert len(list((tmp_path / "c").glob("knn-*-k10-w.npz"))) == 2
    build("lattice", small, tmp_path / "c")  # the same kNN-W graphs: reused
    assert len(list((tmp_path / "c").glob("*.npz"))) == 2
    build("freedom", small, tmp_path / "c")  # kNN-B per modality
    assert len(list((tmp_path / "c").glob("knn-*-k10-b.npz"))) == 2


# -- CLI ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASELINES)
def test_cli_smoke(name: str, small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("R2MR_RUNS_DIR", str(tmp_path / "runs"))
    out = tmp_path / "r.json"
    rc = cli.main(["train", "--model", name, "--dataset", "small", "--data-dir", str(small_root), "--device", "cpu",
                   "--max-epochs", "2", "--set", "batch_size=1024", "--run-dir", str(tmp_path / "run"),
                   "--out", str(out), "--no-progress"])
    assert rc == 0 and f"{name} on small (seed 999, cpu)" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["model"] == name and res["epochs_run"] == 2 and {"recall@20", "ndcg@20"} <= set(res["test"])
    if experiment._wants_cache_dir(MODELS[name]):
        assert list((tmp_path / "runs" / "small" / "cache").glob("knn-*.npz"))


@pytest.mark.parametrize("name", BASELINES)
def test_same_seed_bit_identical_with_two_threads(name: str, small_root: Path, tmp_path: Path) -> None:
    """Two CPU threads (as on CI): a rerun with the same seed gives the same history, float for float."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        kw = dict(data_dir=small_root, max_epochs=2, device="cpu", progress=False, overrides={"batch_size": 256})
        a, b = (experiment.train(name, "small", run_dir=tmp_path / r, **kw) for r in "ab")
    finally:
        torch.set_num_threads(threads)
    assert strip_timing(a["history"]) == strip_timing(b["history"])
