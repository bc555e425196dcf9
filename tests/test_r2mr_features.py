"""Feature preprocessing (spec 1.4) and the content controls."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from r2mr.core.errors import ConfigError
from r2mr.models.r2mr.features import common_dim, content_control, parse_widths, preprocess


def test_common_dim_rule() -> None:
    assert common_dim({"text": 384, "image": 4096}) == 384
    assert common_dim({"image": 128, "audio": 128}) == 128
    assert common_dim({"text": 384, "image": 100}) == 100
    assert common_dim({"text": 384, "image": 4096}, dim=64) == 64
    with pytest.raises(ConfigError, match="wider than modality 'text'"):
        common_dim({"text": 384, "image": 4096}, dim=512)


def test_preprocess_pca_only_wider_then_tanh() -> None:
    rng = np.random.default_rng(0)
    feats = {"text": rng.normal(size=(50, 8)).astype(np.float32), "image": rng.normal(size=(50, 20)).astype(np.float32)}
    out = preprocess(feats, seed=3)
    assert {m: f.shape for m, f in out.items()} == {"text": (50, 8), "image": (50, 8)}
    assert np.allclose(out["text"], np.tanh(feats["text"]), atol=1e-6)  # the d-wide modality only gets tanh
    ref = np.tanh(PCA(8, random_state=3).fit_transform(feats["image"].astype(np.float64)))
    assert np.allclose(out["image"], ref, atol=1e-5) and out["image"].dtype == np.float32
    centred = preprocess(feats, pca="all", seed=3)["text"]  # "all": PCA centres the d-wide modality too
    assert np.abs(np.arctanh(centred).mean(0)).max() < 1e-5
    assert preprocess(feats, seed=3)["image"].tobytes() == out["image"].tobytes()  # seeded


def test_random_control_shapes_and_seed() -> None:
    feats = {"image": np.ones((10, 6), np.float32), "audio": np.ones((10, 4), np.float32)}
    a = content_control(feats, "random", 10, seed=1)
    assert {m: f.shape for m, f in a.items()} == {"image": (10, 6), "audio": (10, 4)}
    assert not np.allclose(a["image"], 1.0)
    assert np.array_equal(a["image"], content_control(feats, "random", 10, seed=1)["image"])
    assert not np.array_equal(a["image"], content_control(feats, "random", 10, seed=2)["image"])
    none = content_control({}, "random", 10, seed=1, widths="text:384,image:4096")  # no feature files
    assert {m: f.shape for m, f in none.items()} == {"text": (10, 384), "image": (10, 4096)}
    assert content_control(feats, "frozen", 10, 1)["image"] is feats["image"]
    with pytest.raises(ConfigError, match="features 'noise' unknown"):
        content_control(feats, "noise", 10, 1)
    with pytest.raises(ConfigError, match="at least two modality:width"):
        parse_widths("text:384")
