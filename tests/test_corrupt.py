"""Corrupted data-set variants: the name declares a seeded swap of one modality's rows, applied in memory on
load (the data folder is untouched), recoverable from the name alone, and keyed apart from the clean set."""

from __future__ import annotations

import numpy as np
import pytest

from r2mr.core.errors import ConfigError, DataError
from r2mr.data import corrupt, load_dataset
from r2mr.data.discovery import find_dataset_root, load_dataset_named
from r2mr.runs import experiment


def test_parse_names():
    c = corrupt.parse("tiktok~image-swap20")
    assert c == corrupt.Corruption("tiktok", "image", 20, 0) and c.name == "tiktok~image-swap20"
    assert corrupt.parse("tiktok~audio-swap40-s3").seed == 3
    assert corrupt.parse("tiktok") is None and corrupt.base_name("tiktok~audio-swap40") == "tiktok"
    for bad in ("tiktok~image", "tiktok~image-swap0", "tiktok~image-swap100", "~image-swap20", "t~Image-swap5"):
        with pytest.raises(ConfigError, match="fix: e.g. tiktok~image-swap20"):
            corrupt.parse(bad)


def test_variant_swaps_a_recorded_subset_in_memory(small_root):
    before = sorted(p.name for p in (small_root / "small").iterdir())
    clean = load_dataset("small", small_root)
    bad = load_dataset("small~image-swap20", small_root)
    assert sorted(p.name for p in (small_root / "small").iterdir()) == before  # nothing written
    assert bad.name == "small~image-swap20" and bad.n_items == clean.n_items
    mask = corrupt.corrupted_items(bad.name, bad.n_items)
    assert mask.sum() == round(0.2 * clean.n_items)
    img, ref = bad.features["image"], clean.features["image"]
    changed = np.any(img != ref, axis=1)
    assert np.array_equal(changed, mask)  # exactly the declared items (the synthetic rows are all distinct)
    items, donors = corrupt.swap_plan(corrupt.parse(bad.name), bad.n_items)
    assert np.all(items != donors) and set(donors) == set(items)  # each takes another chosen item's row
    assert np.array_equal(img[items], ref[donors])
    assert np.array_equal(np.sort(img, axis=0), np.sort(ref, axis=0))  # the same rows, other owners
    assert np.array_equal(bad.features["text"], clean.features["text"])
    assert np.array_equal(bad.train.items, clean.train.items) and np.array_equal(bad.test.users, clean.test.users)
    again = load_dataset("small~image-swap20", small_root)
    assert np.array_equal(again.features["image"], img)  # seeded: the same swap every time
    other = corrupt.corrupted_items("small~image-swap20-s1", bad.n_items)
    assert not np.array_equal(other, mask) and not corrupt.corrupted_items("small", 5).any()
    graph_only = load_dataset("small~image-swap20", small_root, features=False)
    assert graph_only.name == bad.name and not graph_only.features


def test_store_key_changes_with_the_variant(small_root):
    fps = {n: experiment.fingerprint(load_dataset(n, small_root))
           for n in ("small", "small~image-swap20", "small~image-swap40", "small~text-swap20")}
    assert len(set(fps.values())) == 4
    assert experiment.fingerprint(load_dataset("small~image-swap20", small_root)) == fps["small~image-swap20"]
    clean = experiment.run_folder("vbpr", "small", data_dir=small_root, seed=1)
    swapped = experiment.run_folder("vbpr", "small~image-swap20", data_dir=small_root, seed=1)
    assert swapped.parent.name == "small~image-swap20" and clean.name.split("-")[1] != swapped.name.split("-")[1]
    # a variant uses its base set's published configuration
    _, mcfg, _ = experiment.make_configs("vbpr", dataset="tiktok~image-swap20")
    _, clean_cfg, _ = experiment.make_configs("vbpr", dataset="tiktok")
    assert mcfg == clean_cfg and mcfg != experiment.make_configs("vbpr")[1]


def test_discovery_and_errors(small_root):
    assert find_dataset_root("small~image-swap20", small_root) == small_root
    assert load_dataset_named("small~image-swap40", small_root).name == "small~image-swap40"
    with pytest.raises(DataError, match="has no audio features .*fix: corrupt one of its modalities"):
        load_dataset("small~audio-swap20", small_root)
