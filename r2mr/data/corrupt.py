"""Corrupted variants of a data set: a declared, seeded transform applied when the set is loaded, never a
file written into the data folder.

A variant is named ``<base>~<modality>-swap<percent>`` (optionally ``-s<seed>``, default 0), e.g.
``tiktok~image-swap20``: load ``<base>`` and give a random ``percent``% of its items the ``modality`` feature
row of another item of that subset (a "wrong picture"). The subset is drawn from the variant's own generator
(seeded by the base name, modality, percent and seed), so it depends only on the name and the number of items:
:func:`corrupted_items` recovers it without loading features (the ground truth of the Reviewer's ROC-AUC).
The rows are permuted within the subset by a cyclic shift of a random order, so every chosen item gets
another chosen item's row (none keeps its own) and the set of feature rows is unchanged: only which item owns
which row changes. Interactions are untouched.

The variant's name is the data set's name (``Dataset.name``): the store files its runs under it and the
data fingerprint (which hashes the name and every feature matrix) differs from the clean set's, so a
corrupted run never reads a clean one's record or the reverse.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

import numpy as np

from ..core.errors import ConfigError, DataError

SEP = "~"
PATTERN = re.compile(r"^(?P<modality>[a-z][a-z0-9_]*)-swap(?P<percent>[0-9]{1,2})(?:-s(?P<seed>[0-9]{1,9}))?$")
EXAMPLE = "tiktok~image-swap20 (or tiktok~audio-swap40-s1)"


@dataclass(frozen=True)
class Corruption:
    """One declared corruption: swap the ``modality`` rows of ``percent``% of the items, drawn with ``seed``."""

    base: str
    modality: str
    percent: int
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.base}{SEP}{self.modality}-swap{self.percent}" + (f"-s{self.seed}" if self.seed else "")


def base_name(name: str) -> str:
    """The clean data set a (possibly corrupted) data set name refers to."""
    return name.split(SEP, 1)[0]


def parse(name: str) -> Corruption | None:
    """The corruption a data set name declares (None for a plain name); a malformed variant is a ConfigError."""
    if SEP not in name:
        return None
    base, variant = name.split(SEP, 1)
    m = PATTERN.match(variant)
    if not base or m is None or not 1 <= int(m["percent"]) <= 99:
        raise ConfigError(f"data set '{name}': the variant '{variant}' is not <modality>-swap<percent 1-99>"
                          f"[-s<seed>]; fix: e.g. {EXAMPLE}")
    return Corruption(base, m["modality"], int(m["percent"]), int(m["seed"] or 0))


def _rng(c: Corruption) -> np.random.Generator:
    digest = hashlib.sha256(f"{c.base}|{c.modality}|{c.percent}|{c.seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def swap_plan(c: Corruption, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(items, donors), int64 (k,) with k = round(percent% of n_items) ≥ 2, items sorted: item ``items[j]``
    gets the feature row of ``donors[j]`` (another item of the subset)."""
    k = max(2, int(round(c.percent / 100 * n_items)))
    if k > n_items:
        raise DataError(f"data set '{c.name}': {n_items} item(s) are too few to swap; fix: use a larger data set")
    rng = _rng(c)
    chosen = rng.choice(n_items, size=k, replace=False)  # a random order of a random subset
    donors = np.roll(chosen, -1)  # chosen[j] takes chosen[j + 1]'s row: a derangement of the subset
    order = np.argsort(chosen)
    return chosen[order].astype(np.int64), donors[order].astype(np.int64)


def corrupted_items(name: str, n_items: int) -> np.ndarray:
    """bool (n_items,): the items whose features the variant ``name`` swapped (all False for a plain name)."""
    mask = np.zeros(n_items, dtype=bool)
    c = parse(name)
    if c is not None:
        mask[swap_plan(c, n_items)[0]] = True
    return mask


def apply(ds, c: Corruption):
    """A copy of ``ds`` (a :class:`r2mr.data.Dataset` of ``c.base``) named ``c.name`` with the swap applied to
    its ``c.modality`` features (other modalities and the splits are shared, not copied)."""
    if c.modality not in ds.features:
        have = ", ".join(ds.features) or "none loaded"
        raise DataError(f"data set '{c.name}': {c.base} has no {c.modality} features (has {have}); fix: "
                        f"corrupt one of its modalities, e.g. {c.base}{SEP}{next(iter(ds.features), 'image')}"
                        f"-swap{c.percent}")
    items, donors = swap_plan(c, ds.n_items)
    feat = ds.features[c.modality].copy()
    feat[items] = ds.features[c.modality][donors]
    return replace(ds, name=c.name, features={**ds.features, c.modality: feat})
