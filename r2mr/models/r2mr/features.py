"""Item-feature preprocessing for R2MR (spec 1.4) and the content controls.

* ``common_dim``: the shared width d: 384 when every modality is at least 384 wide (the Amazon sets),
  else the narrowest modality's width (e.g. 128 on TikTok).
* ``preprocess``: per modality, scikit-learn PCA to d (centred, not whitened; fitted on all items), then
  element-wise tanh. By default (``pca="wider"``, the official code) only modalities wider than d are
  reduced: Amazon's 4096-d image goes to 384 and the 384-d text only gets tanh. ``pca="all"`` also
  rotates and centres modalities that are already d wide (useful for non-centred features, which
  tanh would otherwise saturate). ``pca="image_only"`` is the official code's literal rule: PCA on the
  modality named ``image`` (even when it is already d wide, e.g. TikTok's 128-d visual features), tanh
  alone on every other modality (which must then be d wide). On Amazon it equals ``wider``.
* ``content_control``: ``real`` keeps the features; ``random`` replaces each modality by N(0, 1) vectors
  of the same shape (seeded), so any accuracy left comes from the tables acting as free item embeddings;
  ``frozen`` keeps the real features (the model then stops them from training).

All functions are pure: NumPy in, NumPy out, float32 (n_items, width) matrices.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.decomposition import PCA

from ...core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

AMAZON_DIM = 384  # the official hard-coded latent width (dim_latent)
CONTROLS = ("real", "random", "frozen")
PCA_MODES = ("wider", "all", "image_only")


def common_dim(widths: dict[str, int], dim: int = 0) -> int:
    """The shared width d: ``dim`` if positive (and no wider than any modality), else the automatic rule."""
    narrowest = min(widths.values())
    if dim <= 0:
        return min(AMAZON_DIM, narrowest)
    if dim > narrowest:
        m = min(widths, key=widths.get)
        raise ConfigError(f"dim {dim} is wider than modality '{m}' ({narrowest}); PCA cannot widen features; "
                          f"fix: set dim <= {narrowest} or dim=0 (auto)")
    return dim


def pca_tanh(x: np.ndarray, dim: int, reduce: bool, seed: int) -> np.ndarray:
    """tanh(PCA_dim(x)) if ``reduce`` else tanh(x); x (n_items, w) -> (n_items, dim)."""
    if reduce:
        pca = PCA(n_components=dim, random_state=seed % 2**32)  # sklearn "auto" solver, as in the official code
        x = pca.fit_transform(x.astype(np.float64))  # (n_items, dim)
    elif x.shape[1] != dim:
        raise DataError(f"features of width {x.shape[1]} cannot be used at width {dim} without PCA; "
                        f"fix: set pca=all or a dim equal to the width")
    return np.tanh(x).astype(np.float32)


def preprocess(features: dict[str, np.ndarray], dim: int = 0, pca: str = "wider",
               seed: int = 0) -> dict[str, np.ndarray]:
    """``{modality: (n_items, w_m)}`` -> ``{modality: (n_items, d)}`` by PCA (see ``pca``) and tanh."""
    if pca not in PCA_MODES:
        raise ConfigError(f"pca '{pca}' unknown; fix: use one of {', '.join(PCA_MODES)}")
    d = common_dim({m: f.shape[1] for m, f in features.items()}, dim)
    out = {}
    for m, x in features.items():
        reduce = m == "image" if pca == "image_only" else x.shape[1] > d or pca == "all"
        out[m] = pca_tanh(x, d, reduce, seed)
        log.info("features %s: %s -> %s (%s)", m, x.shape, out[m].shape, "PCA + tanh" if reduce else "tanh")
    return out


def parse_widths(spec: str) -> dict[str, int]:
    """``"text:384,image:4096"`` -> ``{"text": 384, "image": 4096}``."""
    try:
        pairs = [p.split(":") for p in spec.split(",") if p.strip()]
        out = {name.strip(): int(width) for name, width in pairs}
    except ValueError:
        out = {}
    if len(out) < 2 or min(out.values()) < 1:
        raise ConfigError(f"random_widths '{spec}' is not a list of at least two modality:width pairs; "
                          f"fix: write e.g. text:384,image:4096")
    return out


def content_control(features: dict[str, np.ndarray], mode: str, n_items: int, seed: int,
                    widths: str = "text:384,image:4096") -> dict[str, np.ndarray]:
    """Apply the ``content=`` control before preprocessing.

    ``random``: N(0, 1) matrices of the real shapes, or of ``widths`` when the data set has no features.
    """
    if mode not in CONTROLS:
        raise ConfigError(f"features '{mode}' unknown; fix: use one of {', '.join(CONTROLS)}")
    if mode != "random":
        return dict(features)
    shapes = {m: f.shape[1] for m, f in features.items()} or parse_widths(widths)
    rng = np.random.default_rng(seed % 2**32)
    log.info("content=random: seeded N(0, 1) vectors for %s", ", ".join(f"{m} ({w}-d)" for m, w in shapes.items()))
    return {m: rng.standard_normal((n_items, w), dtype=np.float32) for m, w in shapes.items()}  # (n_items, w) each
