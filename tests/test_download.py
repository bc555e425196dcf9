"""``r2mr data download``: fast offline failure with manual instructions; checks before installing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from r2mr.core.errors import DataError
from r2mr.data import load_dataset
from r2mr.data.download import MANIFEST, STAGING_OWNER, download

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


# --- never lose a file; install file by file; manifest; bounded archives; stale staging -----------------------

def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_users_files_in_the_target_are_kept(tmp_path: Path) -> None:
    dest = tmp_path / "baby"
    dest.mkdir()
    (dest / "notes.txt").write_text("my notes")
    np.save(dest / "audio_feat.npy", np.ones((5, 2), np.float32))  # the user's extra modality
    before = snapshot(dest)
    download("baby", tmp_path, fetch=fake_fetch(), probe=lambda: True)
    after = snapshot(dest)
    assert all(after[k] == v for k, v in before.items())
    assert {"baby.inter", "image_feat.npy", "text_feat.npy", MANIFEST} <= set(after)


@pytest.mark.parametrize("clash", ["image_feat.npy", "baby.inter"])
def test_a_file_it_did_not_install_is_never_overwritten(tmp_path: Path, clash: str) -> None:
    dest = tmp_path / "baby"
    dest.mkdir()
    (dest / clash).write_bytes(b"the user's own file")
    before = snapshot(tmp_path)
    calls = []
    with pytest.raises(DataError) as err:
        download("baby", tmp_path, fetch=lambda n, s: calls.append(n), probe=lambda: True)
    assert f"{dest / clash}: exists and was not installed by `r2mr data download`" in str(err.value)
    assert "fix: move it away" in str(err.value) and calls == [] and snapshot(tmp_path) == before


def test_reinstall_over_own_files_and_manifest(tmp_path: Path) -> None:
    import hashlib
    import json

    download("baby", tmp_path, fetch=fake_fetch(), probe=lambda: True)
    download("baby", tmp_path, fetch=fake_fetch(), probe=lambda: True)  # its own files: replaced
    dest = tmp_path / "baby"
    man = json.loads((dest / MANIFEST).read_text())
    assert set(man["files"]) == {"baby.inter", "image_feat.npy", "text_feat.npy"}
    for name, rec in man["files"].items():
        data = (dest / name).read_bytes()
        assert rec == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert man["checksums_published"] is False and man["dataset"] == "baby"
    (dest / "text_feat.npy").write_bytes(b"edited by the user")  # changed since: no longer ours
    with pytest.raises(DataError, match="text_feat.npy: exists and was not installed .*or was changed since"):
        download("baby", tmp_path, fetch=fake_fetch(), probe=lambda: True)
    assert (dest / "text_feat.npy").read_bytes() == b"edited by the user"


def test_symlinked_target_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "big_disk" / "baby"
    elsewhere.mkdir(parents=True)
    (elsewhere / "keep.txt").write_text("x")
    root = tmp_path / "data"
    root.mkdir()
    (root / "baby").symlink_to(elsewhere, target_is_directory=True)
    download("baby", root, fetch=fake_fetch(), probe=lambda: True)
    assert (root / "baby").is_symlink() and (elsewhere / "baby.inter").is_file()
    assert (elsewhere / "keep.txt").read_text() == "x" and load_dataset("baby", root).n_items == 5


def test_cross_device_install_copies_then_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    real = os.replace

    def no_cross(src, dst):  # a rename out of the staging folder fails as across file systems
        if ".download-" in str(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", no_cross)
    out = download("sports", tmp_path, fetch=fake_fetch(), probe=lambda: True)
    assert load_dataset("sports", tmp_path).n_items == 5 and not list(out.glob(".*feat*"))


def test_published_checksums_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import r2mr.data.download as dl

    monkeypatch.setitem(dl.KNOWN, "baby", {"text_feat.npy": (148, "0" * 64)})
    with pytest.raises(DataError, match="text_feat.npy: downloaded .* the publisher's is 148 bytes"):
        download("baby", tmp_path, fetch=fake_fetch(), probe=lambda: True)
    assert not any(tmp_path.iterdir())


def _zip_fetch(members: dict[str, bytes]):
    import zipfile

    def fetch(name: str, staging: Path) -> None:
        with zipfile.ZipFile(staging / f"{name}.zip", "w") as zf:
            for arc, data in members.items():
                zf.writestr(arc, data)
    return fetch


def test_zip_install_and_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import r2mr.data.download as dl

    def npy(shape) -> bytes:
        buf = io.BytesIO()
        np.save(buf, np.ones(shape, np.float32))
        return buf.getvalue()
    inter = "userID\titemID\tx_label\n" + "".join(f"{u}\t{i}\t{x}\n" for u, i, x in TOY_ROWS)
    good = {"baby/baby.inter": inter.encode(), "baby/image_feat.npy": npy((5, 8)), "baby/text_feat.npy": npy((5, 4))}
    assert download("baby", tmp_path / "ok", fetch=_zip_fetch(good), probe=lambda: True).is_dir()
    cases = [("../evil.txt", {**good, "../evil.txt": b"x"}, "would be written outside the download folder"),
             ("absolute", {**good, "/tmp/evil.txt": b"x"}, "would be written outside"),
             ("too big", {**good, "baby/pad.bin": b"0" * 4096}, "unpacks to more than 4,096 bytes"),
             ("too many", {**good, **{f"baby/f{i}": b"" for i in range(5)}}, "holds 8 files, more than the limit of 7")]
    monkeypatch.setattr(dl, "MAX_EXTRACT_BYTES", 4096)
    monkeypatch.setattr(dl, "MAX_EXTRACT_FILES", 7)
    monkeypatch.setattr(dl.extract_bounded, "__defaults__", (4096, 7))
    for case, members, words in cases:
        root = tmp_path / case.replace("/", "_").replace(".", "d")
        with pytest.raises(DataError, match=words.replace("(", r"\(")):
            download("baby", root, fetch=_zip_fetch(members), probe=lambda: True)
        assert not any(root.iterdir()), case  # nothing installed, staging removed
    assert not (tmp_path / "evil.txt").exists()


def test_stale_staging_of_a_killed_download_is_removed(tmp_path: Path) -> None:
    import json
    import os
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale, live, empty = (tmp_path / f".download-baby-{s}" for s in ("dead1", "live1", "empty1"))
    for folder, pid in ((stale, int(dead.stdout)), (live, os.getpid())):
        folder.mkdir()
        (folder / STAGING_OWNER).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
        (folder / "part.npy").write_bytes(b"partial")
    empty.mkdir()  # killed right after creating it
    (tmp_path / ".download-sports-x").mkdir()  # another data set's: not touched by a baby download
    download("baby", tmp_path, fetch=fake_fetch(), probe=lambda: True)
    assert not stale.exists() and not empty.exists() and live.is_dir() and (tmp_path / ".download-sports-x").is_dir()
