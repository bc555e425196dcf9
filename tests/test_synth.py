"""The embedded synthetic data set: determinism, 5-core, MMRec split rule, planted corruption."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd

from r2mr.data import load_dataset
from r2mr.data.synth import SynthConfig, load_quality, write

from .conftest import SMALL


def test_same_seed_same_files(tmp_path: Path) -> None:
    a, b = write(tmp_path / "a" / "s", SynthConfig(**SMALL)), write(tmp_path / "b" / "s", SynthConfig(**SMALL))
    for f in ("s.inter", "text_feat.npy", "image_feat.npy", "quality.csv"):
        assert filecmp.cmp(a / f, b / f, shallow=False), f
    c = write(tmp_path / "c" / "s", SynthConfig(**SMALL, seed=1))
    assert not filecmp.cmp(a / "s.inter", c / "s.inter", shallow=False)


def test_five_core_and_split_rule(small_root: Path) -> None:
    df = pd.read_csv(small_root / "small" / "small.inter", sep="\t")
    assert df.groupby("userID").size().min() >= 5 and df.groupby("itemID").size().min() >= 5
    for _, g in df.groupby("userID"):
        n, counts = len(g), g.x_label.value_counts().reindex([0, 1, 2], fill_value=0).tolist()
        m = int(0.2 * n)
        expected = [n - 2, 1, 1] if n < 10 else [n - m, m // 2, m - m // 2]
        assert counts == expected
    ds = load_dataset("small", small_root)
    assert ds.features["text"].shape == (ds.n_items, 32) and ds.features["image"].shape == (ds.n_items, 64)
    assert np.allclose(np.linalg.norm(ds.features["text"], axis=1), 1.0, atol=1e-5)
    assert (ds.features["image"] >= 0).all()


def test_planted_corruption_shares(small_root: Path) -> None:
    q = load_quality(small_root / "small")
    n_items = q.item.nunique()
    wide = q.pivot(index="item", columns="modality", values="corrupted")
    both = (wide.text & wide.image).sum()
    assert both == round(0.05 * n_items)
    assert (wide.text & ~wide.image).sum() == round(0.15 * n_items)
    assert (wide.image & ~wide.text).sum() == round(0.15 * n_items)


def test_clean_features_carry_signal(small_root: Path) -> None:
    """Items co-consumed by many users are more similar in clean text features than random pairs."""
    ds = load_dataset("small", small_root)
    bad = load_quality(small_root / "small").query("corrupted").item.unique()
    x = ds.features["text"]
    m = ds.train_csr()
    co = (m.T @ m).toarray()
    np.fill_diagonal(co, 0)
    co[bad, :] = co[:, bad] = 0
    i, j = np.unravel_index(np.argsort(-co, axis=None)[:200], co.shape)
    sim_top = (x[i] * x[j]).sum(1).mean()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, ds.n_items, 2000), rng.integers(0, ds.n_items, 2000)
    assert sim_top > (x[a] * x[b]).sum(1).mean() + 0.1
