"""The propagation kernel (r2mr.data.kernels): the same bits as torch.sparse.mm forward and backward, the automatic
pure-PyTorch fallback, layer means as running sums; and whole models trained for a few epochs with today's path
(torch products, stacked layer means) and the new one: same losses, metrics, selected epochs and parameters."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmarks.bench_kernels import stacked_propagate, stacked_propagate_parts  # the layer mean as it was
from r2mr.core.errors import ConfigError
from r2mr.data import kernels, load_dataset
from r2mr.data.graph import csr_rows, spmm, to_torch
from r2mr.evaluation.evaluator import Evaluator
from r2mr.models import bm3, freedom, lattice, lightgcn, mgcn
from r2mr.models import dropout as drop
from r2mr.runs.experiment import _wants_cache_dir, make_configs
from r2mr.training import adam
from r2mr.training.runtime import seed_everything
from r2mr.training.trainer import Trainer
from tests.conftest import write_inter
from tests.test_train import strip_timing

needs_numba = pytest.mark.skipif(not kernels.numba_available(), reason="numba is not installed")


def bits(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().numpy().tobytes()


def random_csr(n: int, m: int, density: float, seed: int) -> torch.Tensor:
    """A random (n, m) CSR float32 tensor with empty rows, single-entry rows and dense-ish rows."""
    rng = np.random.default_rng(seed)
    a = sp.random(n, m, density=density, format="lil", random_state=rng, dtype=np.float64)
    a[0] = 0.0  # an empty row
    a[1, : m // 2] = rng.normal(size=m // 2)  # a long row: many additions in order
    a = a.tocsr()
    a.data = rng.normal(size=a.nnz) * 10.0 ** rng.integers(-3, 3, size=a.nnz)
    a.eliminate_zeros()
    return to_torch(a)


@needs_numba
@pytest.mark.parametrize("d", [1, 7, 64, 128, 130])  # other widths, one panel, two panels, panels and a rest
def test_kernel_same_bits_as_torch_forward_and_backward(d: int) -> None:
    a, at = (random_csr(300, 200, 0.05, d), None)
    at = to_torch(sp.csr_matrix((a.values().numpy(), a.col_indices().numpy(), a.crow_indices().numpy()),
                                shape=tuple(a.shape)).T.tocsr())
    x = (torch.randn(200, d, generator=torch.Generator().manual_seed(d)) * 3).requires_grad_()
    g = torch.randn(300, d, generator=torch.Generator().manual_seed(d + 1))
    out = {}
    for name in ("torch", "numba"):
        with kernels.use_backend(name):
            y = spmm(a, x, at)
            (gx,) = torch.autograd.grad(y, x, g)
            out[name] = (bits(y), bits(gx))
    assert out["numba"] == out["torch"]
    with kernels.use_backend("numba"):  # a non-contiguous x, a row slice of the graph (R2MR's last layer)
        xt = x.detach().T.contiguous().T
        rows = torch.tensor([5, 1, 5, 0, 299])
        sub, sub_t = csr_rows(a, rows)
        new = (bits(kernels.csr_mm(a, xt)), bits(kernels.csr_mm(sub, xt)), bits(kernels.csr_mm(sub_t, g[:5])))
    ref = (bits(torch.sparse.mm(a, xt)), bits(torch.sparse.mm(sub, xt)), bits(torch.sparse.mm(sub_t, g[:5])))
    assert new == ref
    # signed zeros: every row's sum starts at +0.0, so a row of terms -0.0 sums to +0.0, as in torch
    z = to_torch(sp.csr_matrix(np.array([[2.0, 0, 0], [0, -1.0, 0], [0, 1.0, -3.0]], np.float32)))
    xz = torch.zeros(3, d)
    xz[0] = -0.0
    with kernels.use_backend("numba"):
        assert bits(kernels.csr_mm(z, xz)) == bits(torch.sparse.mm(z, xz)) == bits(torch.zeros(3, d))


def test_fallback_selected_automatically_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    a, x = random_csr(50, 40, 0.1, 3), torch.randn(40, 8)
    monkeypatch.setattr(kernels, "_kernels", kernels._UNAVAILABLE)  # as if numba could not be imported
    assert not kernels.numba_available()
    assert bits(kernels.csr_mm(a, x)) == bits(torch.sparse.mm(a, x))
    s = torch.randint(0, 3, (5, 4000)).float()
    assert torch.equal(kernels.topk_indices(s, 50), s.topk(50, dim=1).indices)
    monkeypatch.setenv(kernels.BACKEND_ENV, "numba")  # asked for explicitly: a clear error instead
    with pytest.raises(ConfigError, match="pip install numba"):
        kernels.csr_mm(a, x)
    monkeypatch.setenv(kernels.BACKEND_ENV, "fast")
    with pytest.raises(ConfigError, match="R2MR_SPMM='fast' is not allowed"):
        kernels.csr_mm(a, x)


def test_fallback_for_other_dtypes_and_layouts() -> None:
    a, x = random_csr(30, 20, 0.2, 4), torch.randn(20, 4, dtype=torch.float64)
    a64 = a.to(torch.float64)
    assert torch.equal(kernels.csr_mm(a64, x), torch.sparse.mm(a64, x))
    coo = a.to_sparse_coo()
    assert torch.equal(kernels.csr_mm(coo, x.float()), torch.sparse.mm(coo, x.float()))


# -- evaluation: the score product's orientation and the top-k --------------------------------------------------
@needs_numba
@pytest.mark.parametrize("item_major", [False, True])
def test_topk_same_indices_and_tie_order_as_torch(item_major: bool) -> None:
    g = torch.Generator().manual_seed(int(item_major))
    for levels, n, k in [(3, 3200, 50), (10, 4000, 20), (1000, 7050, 50), (2**24, 6400, 100), (2, 640, 10)]:
        s = torch.randint(0, levels, (257, n), generator=g).float()  # few distinct values: ties everywhere
        s[torch.rand(s.shape, generator=g) < 0.2] = -torch.inf  # masked training items
        s[torch.rand(s.shape, generator=g) < 0.002] = torch.nan
        if item_major:
            s = s.T.contiguous().T
        with kernels.use_backend("numba"):
            got = kernels.topk_indices(s, k)
        assert torch.equal(got, s.topk(k, dim=1).indices), (levels, n, k)


def test_topk_falls_back_where_torch_selects_otherwise() -> None:
    s = torch.randint(0, 3, (9, 100)).float()  # k * 64 > n: torch sorts with nth_element; no heap
    assert torch.equal(kernels.topk_indices(s, 20), s.topk(20, dim=1).indices)


def test_score_orientation_same_bits() -> None:
    g = torch.Generator().manual_seed(0)
    for d in (16, 64, 384):
        for n_users, n_items in [(16, 16), (17, 150), (300, 7050), (4096, 1000), (5, 3000), (3000, 3)]:
            users, items = torch.randn(n_users, d, generator=g), torch.randn(n_items, d, generator=g)
            got = kernels.dot_scores(users, items)
            assert bits(got.contiguous()) == bits(users @ items.T), (d, n_users, n_items)
            assert got.is_contiguous() == (min(n_users, n_items) < kernels.FAST_ORIENTATION_MIN)


@needs_numba
def test_evaluation_same_metrics_with_ties(tmp_path: Path) -> None:
    """4,000 items (the heap path), scores with many ties: the same per-user and mean metrics as torch.topk."""
    label = [1, 2] + [0] * 8  # per user: 2 validation, 2 test (low ids: among the first tied) and 16 training items
    write_inter(tmp_path / "wide", [(j % 200, j, label[(j // 200) % 10]) for j in range(4000)])
    ds = load_dataset("wide", tmp_path, features=False)
    assert ds.n_items == 4000
    # one-hot groups: each user's 200 items of its group (its held-out items among them) tie at score 1, so the
    # top 50 and the metrics depend on the order of tied items
    users, items = (torch.nn.functional.one_hot(torch.arange(n) % 20, 20).float() for n in (ds.n_users, ds.n_items))
    ev = Evaluator(ds, batch_size=64)
    with kernels.use_backend("torch"):
        old = ev.evaluate_full(lambda u: users[u] @ items.T)
    new = ev.evaluate_full(lambda u: kernels.dot_scores(users[u], items))
    assert old[0] == new[0] and old[0]["test"]["recall@50"] > 0
    assert all(torch.equal(old[1][s][k], new[1][s][k]) for s in old[1] for k in old[1][s])


@pytest.mark.parametrize("backend", ["torch", pytest.param("numba", marks=needs_numba)])
@pytest.mark.parametrize("n_layers", [0, 1, 2, 4])
def test_running_mean_same_bits_as_stack_then_mean(n_layers: int, backend: str) -> None:
    """Values and gradients of the layer mean: composed (torch) and fused (numba) against stack-then-mean."""
    a = random_csr(120, 120, 0.05, n_layers)
    a_t = to_torch(sp.csr_matrix((a.values().numpy(), a.col_indices().numpy(), a.crow_indices().numpy()),
                                 shape=(120, 120)).T.tocsr())
    ego = torch.randn(120, 16, generator=torch.Generator().manual_seed(0))
    ego[3, :4] = -0.0  # signed zeros: the stacked sum starts at +0.0
    ego[7] = 0.0
    ego.requires_grad_()
    g = torch.randn(120, 16, generator=torch.Generator().manual_seed(1))
    got = []
    for f, name in ((stacked_propagate, "torch"), (lightgcn.propagate, backend)):
        with kernels.use_backend(name):
            y = f(a, ego, n_layers, a_t)
            got.append((bits(y), bits(torch.autograd.grad(y, ego, g)[0])))
    assert got[0] == got[1]


@needs_numba
@pytest.mark.parametrize("d", [24, kernels.PANEL, 2 * kernels.PANEL])  # any width; one panel; two panels
def test_product_at_some_rows_and_from_live_rows_keeps_the_full_products_bits(d: int) -> None:
    """``rows``: only those output rows are written; ``live``: rows of x outside it are zero and skipped."""
    a = random_csr(150, 120, 0.08, 3)
    x = torch.randn(120, d, generator=torch.Generator().manual_seed(3))
    live = torch.zeros(120, dtype=torch.bool)
    live[[0, 5, 6, 77, 119]] = True
    x[~live] = 0.0
    x[5, :3] = -0.0
    other = torch.randn(150, d, generator=torch.Generator().manual_seed(4))
    out = torch.empty(150, d)
    kernels.csr_mm_add(a, x, other, out, into_other=False, live=live)
    assert bits(out) == bits(torch.sparse.mm(a, x) + other)
    rows = torch.tensor([1, 4, 149])
    out, acc = torch.full((150, d), 7.0), other.clone()
    kernels.csr_mm_add(a, x, acc, out, into_other=True, rows=rows)
    full = torch.sparse.mm(a, x)
    assert bits(out[rows]) == bits(full[rows]) and bits(acc[rows]) == bits(other[rows] + full[rows])
    rest = torch.ones(150, dtype=torch.bool)
    rest[rows] = False
    assert torch.equal(out[rest], torch.full((147, d), 7.0)) and torch.equal(acc[rest], other[rest])


@needs_numba
@pytest.mark.parametrize("d", [16, kernels.PANEL])
def test_layer_mean_at_the_loss_rows_same_bits_as_stack_then_mean(d: int) -> None:
    """LightGCN's training path: the last layer at the rows the loss reads, and a backward whose first product
    reads only the rows with a gradient (fewer than half here), against stack-then-mean over every row."""
    a = random_csr(200, 200, 0.03, 5)
    a = to_torch(sp.csr_matrix((a.values().abs().numpy(), a.col_indices().numpy(), a.crow_indices().numpy()),
                               shape=(200, 200)))
    ego = torch.randn(200, d, generator=torch.Generator().manual_seed(5)).requires_grad_()
    rows = torch.tensor([2, 3, 50, 51, 120, 199])
    pick = torch.tensor([3, 50, 50, 199, 2, 120, 51])  # the loss reads rows with repeats, in its order
    w = torch.randn(7, d, generator=torch.Generator().manual_seed(6))
    got = []
    for f, name, kw in ((stacked_propagate, "torch", {}), (lightgcn.propagate, "numba", {"last_rows": rows})):
        with kernels.use_backend(name):
            y = f(a, ego, 3, None, **kw)
            loss = (y.index_select(0, pick) * w).sum()
            got.append((bits(y[rows]), bits(torch.autograd.grad(loss, ego)[0])))
    assert got[0] == got[1]


@pytest.mark.parametrize("backend", ["torch", pytest.param("numba", marks=needs_numba)])
@pytest.mark.parametrize("used", ["both", "first", "second"])
@pytest.mark.parametrize("n_layers", [0, 2])  # 0: the joined gradient is the parts' gradient, its zeros' signs seen
def test_layer_mean_of_parts_same_bits_as_concatenate_then_slice(used: str, backend: str, n_layers: int) -> None:
    """Two tables stacked, propagated and split in one operation: values and gradients equal to concatenating,
    stack-then-mean and slicing, with signed zeros in the gradients and one part's gradient missing."""
    a = random_csr(130, 130, 0.05, 9)
    parts = [torch.randn(n, 16, generator=torch.Generator().manual_seed(n)).requires_grad_() for n in (50, 80)]
    g = [torch.randn(n, 16, generator=torch.Generator().manual_seed(n + 1)) for n in (50, 80)]
    g[0][:5] = -0.0  # autograd's padded sum makes these +0.0 where both parts have a gradient
    g[1][7] = -0.0
    pick = {"both": (0, 1), "first": (0,), "second": (1,)}[used]
    got = []
    for f, name in ((stacked_propagate_parts, "torch"), (lightgcn.propagate_parts, backend)):
        with kernels.use_backend(name):
            out = f(a, tuple(parts), n_layers)
            grads = torch.autograd.grad([out[k] for k in pick], parts, [g[k] for k in pick])
            got.append(b"".join(bits(t) for t in (*out, *grads)))
    assert got[0] == got[1]


@needs_numba
@pytest.mark.parametrize("broken_part", ["prefetch", "stack_buffer"])
def test_product_without_its_compiler_hints_keeps_its_bits(monkeypatch: pytest.MonkeyPatch, broken_part: str) -> None:
    """Where llvm.prefetch or the stack buffer cannot be built the kernels run without the hint (a heap buffer),
    same bits: the width-PANEL kernels and the others, with and without ``rows`` and ``live``."""
    import numba

    from r2mr.data import prefetch, stack_buffer

    def broken(numba, *args):
        raise RuntimeError(f"no intrinsic {args} here")

    module = {"prefetch": prefetch, "stack_buffer": stack_buffer}[broken_part]
    monkeypatch.setattr(module, "_intrinsic", broken)
    names = (prefetch.make_prefetch(numba, 4).__name__, stack_buffer.make_stack_buffer(numba, 4).__name__)
    assert names == {"prefetch": ("no_prefetch", "stack_buffer"), "stack_buffer": ("prefetch_row", "heap_buffer")}[
        broken_part]
    monkeypatch.setattr(kernels, "make_prefetch", prefetch.make_prefetch)
    monkeypatch.setattr(kernels, "make_stack_buffer", stack_buffer.make_stack_buffer)
    monkeypatch.setattr(kernels, "_kernels", kernels._compile())  # compiled without that part
    for d in (16, kernels.PANEL, 2 * kernels.PANEL):
        a, x = random_csr(90, 80, 0.1, d), torch.randn(80, d, generator=torch.Generator().manual_seed(7))
        assert bits(kernels.csr_mm(a, x)) == bits(torch.sparse.mm(a, x))
        live, other, out = torch.arange(80) % 3 == 0, torch.randn(90, d), torch.empty(90, d)
        x[~live] = 0.0
        kernels.csr_mm_add(a, x, other, out, into_other=False, live=live)
        assert bits(out) == bits(torch.sparse.mm(a, x) + other)
        rows, total = torch.tensor([0, 3, 89]), other.clone()
        kernels.csr_mm_add(a, x, total, out, into_other=True, rows=rows)
        assert bits(total[rows]) == bits(other[rows] + torch.sparse.mm(a, x)[rows])


# -- whole models: today's path (torch's products and Adam) against the new one ----------------------------------
PROPAGATE_USERS = (lightgcn, lattice, freedom, bm3, mgcn)  # modules that import lightgcn.propagate(_parts)
MODELS = {"bpr": {}, "vbpr": {}, "lightgcn": {}, "lattice": {}, "freedom": {}, "bm3": {}, "mgcn": {},
          "r2mr": {"rewrite_every": 1, "max_rounds": 2, "dim": 32}}


def fit(name: str, root: Path, cache: Path, overrides: dict) -> tuple[dict, str]:
    """(result, SHA-256 of the final state dict) of 3 epochs of ``name`` on the small set."""
    cls, mcfg, tcfg = make_configs(name, {"batch_size": 256, **overrides}, max_epochs=3)
    ds = load_dataset("small", root, features=cls.needs_features)
    seed_everything(tcfg.seed)
    kw = {"cache_dir": cache} if _wants_cache_dir(cls) else {}
    trainer = Trainer(cls(ds, mcfg, **kw), ds, tcfg, "cpu", None, progress=False)
    res = trainer.fit()
    h = hashlib.sha256()
    for key, value in sorted(trainer.model.state_dict().items()):
        h.update(key.encode())
        h.update(bits(value.cpu()) if value.layout == torch.strided else b"")
    return res, h.hexdigest()


@needs_numba
@pytest.mark.parametrize("name", list(MODELS))
def test_model_same_numbers_as_torch_path(name: str, small_root: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, one_torch_thread: None) -> None:
    # one thread: the compiled Adam runs only there (as in a run's worker); run alone, torch has two
    with monkeypatch.context() as m, kernels.use_backend("torch"):
        for module in PROPAGATE_USERS:
            for attr, old in (("propagate", stacked_propagate), ("propagate_parts", stacked_propagate_parts)):
                if hasattr(module, attr):
                    m.setattr(module, attr, old)
        old, old_sha = fit(name, small_root, tmp_path, MODELS[name])
    fast, drawn = [], []  # parameters the compiled Adam stepped; dropout masks the compiled generator drew
    step_fast, draw = adam.Adam._step_fast, drop.draw_
    monkeypatch.setattr(adam.Adam, "_step_fast", staticmethod(lambda *args: (fast.append(1), step_fast(*args))[1]))
    drop.agrees_with_torch()  # its self-check draws too
    monkeypatch.setattr(drop, "draw_", lambda *args: (drawn.append(1), draw(*args))[1])
    with kernels.use_backend("numba"):
        new, new_sha = fit(name, small_root, tmp_path, MODELS[name])
    assert fast, "the compiled Adam (AdamW for R2MR) did not run"
    assert bool(drawn) == (name in ("bm3", "r2mr")), "the compiled dropout did not run where expected"
    assert strip_timing(new["history"]) == strip_timing(old["history"])  # losses and every metric, float for float
    assert (new["best_epoch"], new["selected_by_test_epoch"]) == (old["best_epoch"], old["selected_by_test_epoch"])
    assert new_sha == old_sha and len(old["history"]) == 3
