"""``r2mr data download``: fast offline failure with manual instructions; checks before installing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from r2mr.data import load_dataset
from r2mr.data.download import download
from r2mr.errors import DataError

from .conftest import TOY_ROWS, write_inter


def fake_fetch(good: bool = True):
    def fetch(name: str, staging: Path) -> None:
        sub = staging / name
        write_inter(sub, TOY_ROWS, name=f"{name}14-indexed-v4")  # official file name, renamed on install
        np.save(sub / "image_feat.npy", np.ones((5 if good else 4, 8), np.float32))
        np.save(sub / "text_feat.npy", np.ones((5, 4), np.float32))
    return fetch


def test_offline_fails_fast_with_manual_hint(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    with pytest.raises(DataError) as err:
        download("baby", tmp_path, probe=lambda: False)
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert "cannot reach drive.google.com" in msg and "by hand" in msg and str(tmp_path / "baby") in msg
    assert "13cBy1EA_saTUuXxVllKgtfci2A09jyaG" in msg and not any(tmp_path.iterdir())


def test_real_probe_without_network_is_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*a, **k):
        raise OSError("network unreachable")
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DataError, match="cannot reach"):
        download("sports", tmp_path)


def test_download_installs_checked_files(tmp_path: Path) -> None:
    out = download("clothing", tmp_path, fetch=fake_fetch(), probe=lambda: True)
    assert out == tmp_path / "clothing" and (out / "clothing.inter").is_file()
    ds = load_dataset("clothing", tmp_path)
    assert ds.modalities == ["text", "image"] and ds.n_items == 5
    assert [p.name for p in tmp_path.iterdir()] == ["clothing"]  # no staging left behind


def test_bad_download_installs_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="4 rows but the data set has 5 items"):
        download("baby", tmp_path, fetch=fake_fetch(good=False), probe=lambda: True)
    assert not any(tmp_path.iterdir())


def test_fetch_error_becomes_one_line(tmp_path: Path) -> None:
    def broken(name: str, staging: Path) -> None:
        raise RuntimeError("Too many users have viewed or downloaded this file recently\nmore")
    with pytest.raises(DataError) as err:
        download("baby", tmp_path, fetch=broken, probe=lambda: True)
    assert "\n" not in str(err.value) and "Too many users" in str(err.value) and "by hand" in str(err.value)


def test_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="choose one of baby, sports, clothing"):
        download("tiktok", tmp_path, probe=lambda: True)
