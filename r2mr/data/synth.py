"""The embedded default data set: a seeded synthetic MMRec folder with planted modality corruption.

Generative story (all draws from one ``numpy.random.Generator``):
1. user factors ``P`` (n_users, r) and item factors ``Q`` (n_items, r), both N(0, 1/r);
   an item popularity bias ``b_j = -alpha * log(rank_j)`` (Zipf-like skew);
2. each user draws ``n_u ~ LogNormal`` items without replacement from softmax(tau * P_u Q_j^T + b_j)
   (Gumbel top-k);
3. 5-core filtering on users and items (repeated until stable), then 0-based re-indexing;
4. MMRec's per-user split: shuffle; n < 10: n-2 / 1 / 1; else m = int(0.2 n), valid m // 2, test m - valid;
5. two modalities derived from ``Q``: text-like (384-d, unit-norm rows, like MiniLM sentence vectors) and
   image-like (4096-d, non-negative, like CNN FC7 activations);
6. corruption: a known share of items gets one or both modalities computed from an independent random
   factor instead of its own, i.e. features with the right marginal statistics but no information about
   the item. ``quality.csv`` records (item, modality, corrupted yes/no).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..core.atomic_io import atomic_path, write_json, write_text
from ..core.config_rules import Validated
from ..core.errors import DataError


@dataclass
class SynthConfig(Validated):
    n_users: int = 2000  # users before 5-core filtering
    n_items: int = 1000  # items before 5-core filtering
    latent_dim: int = 16  # rank of the true preference model
    mean_interactions: float = 14.0  # mean interactions per user (log-normal, sigma 0.6)
    popularity_alpha: float = 0.8  # Zipf exponent of the item popularity bias
    temperature: float = 6.0  # sharpness of the preference softmax
    text_dim: int = 384  # text-like width (MiniLM-sized)
    image_dim: int = 4096  # image-like width (CNN FC7-sized)
    feature_noise: float = 0.3  # item-specific noise added to informative features (relative)
    corrupt_text: float = 0.15  # share of items with only the text modality corrupted
    corrupt_image: float = 0.15  # share of items with only the image modality corrupted
    corrupt_both: float = 0.05  # share of items with both modalities corrupted
    seed: int = 0


def _sample_interactions(cfg: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (users, items, item_factors) before filtering."""
    r = cfg.latent_dim
    p = rng.normal(0.0, 1.0 / np.sqrt(r), (cfg.n_users, r))  # (U, r)
    q = rng.normal(0.0, 1.0 / np.sqrt(r), (cfg.n_items, r))  # (I, r)
    bias = -cfg.popularity_alpha * np.log(rng.permutation(cfg.n_items) + 1.0)  # (I,)
    n_u = np.clip(np.round(rng.lognormal(np.log(cfg.mean_interactions) - 0.18, 0.6, cfg.n_users)), 3,
                  cfg.n_items // 4).astype(int)
    logits = cfg.temperature * (p @ q.T) + bias  # (U, I)
    gumbel = logits + rng.gumbel(size=logits.shape)
    order = np.argsort(-gumbel, axis=1, kind="stable")  # (U, I)
    users = np.repeat(np.arange(cfg.n_users), n_u)
    items = np.concatenate([order[u, :k] for u, k in enumerate(n_u)])
    return users, items, q


def five_core(users: np.ndarray, items: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Drop users and items with fewer than ``k`` interactions until none remain; keep array order."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        uc = np.bincount(users[keep], minlength=users.max() + 1)
        ic = np.bincount(items[keep], minlength=items.max() + 1)
        new = keep & (uc[users] >= k) & (ic[items] >= k)
        if new.sum() == keep.sum():
            return users[keep], items[keep]
        keep = new


def mmrec_split(users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x_label per interaction by MMRec's per-user rule (shuffled per user)."""
    labels = np.zeros(len(users), dtype=np.int64)
    for u in np.unique(users):
        idx = rng.permutation(np.flatnonzero(users == u))
        n = len(idx)
        if n < 10:
            n_valid, n_test = 1, 1
        else:
            m = int(0.2 * n)
            n_valid, n_test = m // 2, m - m // 2
        labels[idx[n - n_valid - n_test: n - n_test]] = 1
        labels[idx[n - n_test:]] = 2
    return labels


def _projections(cfg: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random maps from item factors to the text (r, 384) and image (r, 4096) spaces."""
    return (rng.normal(0.0, 1.0, (cfg.latent_dim, cfg.text_dim)),
            rng.normal(0.0, 1.0, (cfg.latent_dim, cfg.image_dim)))


def _features(q: np.ndarray, w: tuple[np.ndarray, np.ndarray], cfg: SynthConfig,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Text-like (unit-norm rows) and image-like (non-negative) features from item factors ``q`` (I, r)."""
    scale = np.sqrt(1.0 / cfg.latent_dim)
    text = q @ w[0] + cfg.feature_noise * scale * rng.normal(size=(len(q), cfg.text_dim))  # (I, 384)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    image = q @ w[1] + cfg.feature_noise * scale * rng.normal(size=(len(q), cfg.image_dim))  # (I, 4096)
    image = 4.0 * np.maximum(image - 0.1, 0.0)
    return {"text": text.astype(np.float32), "image": image.astype(np.float32)}


def _corruption(n_items: int, cfg: SynthConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Boolean masks (n_items,) of corrupted text and image rows."""
    perm = rng.permutation(n_items)
    nb, nt, nv = (int(round(s * n_items)) for s in (cfg.corrupt_both, cfg.corrupt_text, cfg.corrupt_image))
    text, image = np.zeros(n_items, bool), np.zeros(n_items, bool)
    text[perm[:nb]] = image[perm[:nb]] = True
    text[perm[nb: nb + nt]] = True
    image[perm[nb + nt: nb + nt + nv]] = True
    return {"text": text, "image": image}


def generate(cfg: SynthConfig) -> tuple[pd.DataFrame, dict[str, np.ndarray], pd.DataFrame]:
    """Build (inter table, features, quality table) in memory, deterministically from ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    users, items, q = _sample_interactions(cfg, rng)
    users, items = five_core(users, items)
    if len(users) == 0:
        raise DataError("synthetic settings leave no interaction after 5-core filtering; fix: raise n_users, "
                        "n_items or mean_interactions (--set n_users=2000)")
    u_ids, users = np.unique(users, return_inverse=True)
    i_ids, items = np.unique(items, return_inverse=True)
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    labels = mmrec_split(users, rng)
    q = q[i_ids]  # (I', r)
    masks = _corruption(len(i_ids), cfg, rng)
    w = _projections(cfg, rng)
    clean = _features(q, w, cfg, rng)
    noise_q = rng.normal(0.0, 1.0 / np.sqrt(cfg.latent_dim), q.shape)  # (I', r) uninformative factors
    fake = _features(noise_q, w, cfg, rng)  # same projections and marginals, no information on the item
    feats = {m: np.where(masks[m][:, None], fake[m], clean[m]) for m in clean}
    inter = pd.DataFrame({"userID": users, "itemID": items, "x_label": labels})
    quality = pd.DataFrame([(i, m, "yes" if masks[m][i] else "no") for m in ("text", "image")
                            for i in range(len(i_ids))], columns=["item", "modality", "corrupted"])
    return inter, feats, quality


MARKER = ".r2mr-synthetic.json"  # written by `write` into every set it makes: its settings and its files


def own_files(name: str) -> list[str]:
    """The files ``write`` creates in folder ``<name>`` (the marker last)."""
    return [f"{name}.inter", "text_feat.npy", "image_feat.npy", "quality.csv", "synth.yaml", MARKER]


def _claim(out: Path) -> None:
    """Refuse ``out`` unless it is missing, an empty folder, or a synthetic set made by ``write``.

    A set made before the marker existed (``synth.yaml`` present, no other files) counts as made by ``write``.
    """
    if out.is_symlink() and not out.exists():
        raise DataError(f"{out}: is a symlink to a missing folder; fix: create its target or choose another --out")
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; fix: choose a new folder for --out, e.g. data/synthetic")
    present = {p.name for p in out.iterdir()}
    legacy = "synth.yaml" in present and present <= set(own_files(out.name))
    if present and MARKER not in present and not legacy:
        raise DataError(f"{out}: exists and is not a synthetic set written by `r2mr data synth` (no {MARKER}); "
                        f"nothing was changed; fix: choose a new folder for --out, e.g. {out / 'synthetic'}")


def write(out: str | Path, cfg: SynthConfig | None = None) -> Path:
    """Write the synthetic set to folder ``out`` (name = its basename); return the folder.

    ``out`` must be missing, empty, or a set this function wrote (it holds :data:`MARKER`); then only the
    files of :func:`own_files` are replaced, each atomically, and any other file in the folder is kept.
    """
    cfg = cfg or SynthConfig()
    out = Path(out)
    name = out.name
    if not name or name in (".", ".."):
        raise DataError(f"{out}: give a folder name for the synthetic data set, e.g. data/synthetic")
    _claim(out)
    inter, feats, quality = generate(cfg)
    settings = dataclasses.asdict(cfg)
    out.mkdir(parents=True, exist_ok=True)
    marker = {"made_by": "r2mr data synth", "settings": settings, "files": own_files(name), "complete": False}
    write_json(out / MARKER, marker)  # first: a killed run leaves a folder the next run may rewrite
    with atomic_path(out / f"{name}.inter") as tmp:
        inter.to_csv(tmp, sep="\t", index=False)
    for m, arr in feats.items():
        with atomic_path(out / f"{m}_feat.npy") as tmp:
            np.save(tmp, arr)
    with atomic_path(out / "quality.csv") as tmp:
        quality.to_csv(tmp, index=False)
    write_text(out / "synth.yaml", yaml.safe_dump(settings, sort_keys=False))
    write_json(out / MARKER, {**marker, "complete": True})
    return out


def load_quality(folder: str | Path) -> pd.DataFrame:
    """The planted-corruption table of a synthetic folder, with ``corrupted`` as bool."""
    path = Path(folder) / "quality.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found; fix: only synthetic data sets (r2mr data synth) have ground truth")
    df = pd.read_csv(path)
    df["corrupted"] = df["corrupted"].map({"yes": True, "no": False})
    return df
