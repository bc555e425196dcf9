"""TikTok provenance: the DiffMM release's pickled matrices -> the MMRec folder, offline on small files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from r2mr.core.errors import DataError
from r2mr.data import load_dataset
from r2mr.data.convert import convert_tiktok, load_sparse_pickle
from r2mr.runs.experiment import fingerprint

from .conftest import write_inter


def make_release(folder: Path, dst: Path, protocol: int = 2, fmt: str = "coo") -> None:
    """Pickle the splits of an MMRec folder ``folder`` like the release (float64 sparse user x item)."""
    df = pd.read_csv(folder / f"{folder.name}.inter", sep="\t")
    shape = (int(df.userID.max()) + 1, int(df.itemID.max()) + 1)
    dst.mkdir(parents=True)
    for label, fname in enumerate(("trnMat.pkl", "valMat.pkl", "tstMat.pkl")):
        part = df[df.x_label == label].sample(frac=1.0, random_state=label)  # release order is not ours
        m = sp.coo_matrix((np.ones(len(part)), (part.userID, part.itemID)), shape=shape)
        with open(dst / fname, "wb") as fh:
            pickle.dump(m if fmt == "coo" else m.tocsr(), fh, protocol=protocol)
    for f in ("image_feat.npy", "audio_feat.npy"):
        np.save(dst / f, np.load(folder / f))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [(u, i, 0) for u in range(6) for i in range(5) if (u + i) % 2 == 0]
    rows += [(u, 5 + u % 2, 1 + u % 2) for u in range(6)]
    folder = tmp_path / "src" / "tiktok"
    write_inter(folder, sorted(rows))
    for f in ("image_feat.npy", "audio_feat.npy"):
        np.save(folder / f, rng.normal(size=(7, 4)).astype(np.float16))
    return folder


@pytest.mark.parametrize("protocol,fmt", [(2, "coo"), (5, "csr")])
def test_convert_gives_the_same_data_set(tiny: Path, tmp_path: Path, protocol: int, fmt: str) -> None:
    make_release(tiny, tmp_path / "release", protocol, fmt)
    out = convert_tiktok(tmp_path / "release", tmp_path / "data" / "tiktok")
    assert out == tmp_path / "data" / "tiktok"
    assert (out / "tiktok.inter").read_bytes() == (tiny / "tiktok.inter").read_bytes()
    assert np.load(out / "image_feat.npy").dtype == np.float16
    a, b = load_dataset("tiktok", tmp_path / "data"), load_dataset("tiktok", tiny.parent)
    assert fingerprint(a) == fingerprint(b)
    with pytest.raises(DataError, match="already exists"):
        convert_tiktok(tmp_path / "release", out)


def test_bad_release_files_are_one_line_errors(tiny: Path, tmp_path: Path) -> None:
    make_release(tiny, tmp_path / "rel")
    (tmp_path / "rel" / "valMat.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="valMat.pkl: not a readable pickle"):
        convert_tiktok(tmp_path / "rel", tmp_path / "out")
    (tmp_path / "rel" / "valMat.pkl").unlink()
    with pytest.raises(DataError, match="valMat.pkl: not found"):
        convert_tiktok(tmp_path / "rel", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with open(tmp_path / "rel" / "list.pkl", "wb") as fh:
        pickle.dump([1, 2], fh)
    with pytest.raises(DataError, match="expected a SciPy sparse"):
        load_sparse_pickle(tmp_path / "rel" / "list.pkl")


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_planted_pickle_does_not_execute(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "trnMat.pkl"
    path.write_bytes(pickle.dumps(_Planted(marker)))
    with pytest.raises(DataError, match="refers to .*system.*refused"):
        load_sparse_pickle(path)
    assert not marker.exists()
    inside = {"matrix": sp.coo_matrix(np.eye(2)), "payload": _Planted(marker)}
    path.write_bytes(pickle.dumps(inside))
    with pytest.raises(DataError, match="refused"):
        load_sparse_pickle(path)
    assert not marker.exists()


@pytest.mark.skipif(not os.environ.get("R2MR_DATA_DIR"), reason="needs $R2MR_DATA_DIR/tiktok")
def test_real_tiktok_round_trip(tmp_path: Path) -> None:
    folder = Path(os.environ["R2MR_DATA_DIR"]) / "tiktok"
    if not (folder / "tiktok.inter").is_file():
        pytest.skip("no tiktok folder under $R2MR_DATA_DIR")
    make_release(folder, tmp_path / "release")
    convert_tiktok(tmp_path / "release", tmp_path / "data" / "tiktok")
    assert fingerprint(load_dataset("tiktok", tmp_path / "data")) == fingerprint(load_dataset("tiktok", folder.parent))
