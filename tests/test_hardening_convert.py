"""Issue 22, ``data convert tiktok`` on forged release files: pickles whose state bypasses SciPy's checks, object
or non-finite features. Each is one line naming the file and the problem, exit 2, with memory proportional to the
files, and no folder left behind; a rerun after fixing the file converts."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from r2mr.cli.main import main

from .test_convert import make_release, tiny  # noqa: F401 - the fixture
from .test_hardening import one_error_line


def _dump(path: Path, m: object) -> None:
    with open(path, "wb") as fh:
        pickle.dump(m, fh, protocol=4)


def _forged(path: Path, fmt: str, **state: object) -> None:
    """Re-pickle the matrix in ``path`` as ``fmt`` with attributes set behind SciPy's back."""
    with open(path, "rb") as fh:
        m = pickle.load(fh).asformat(fmt)
    for k, v in state.items():
        if k == "shape":
            m._shape = v
        else:
            setattr(m, k, v)
    _dump(path, m)


def _csr_state(rel: Path, change: Callable[[sp.csr_matrix], dict]) -> None:
    with open(rel / "valMat.pkl", "rb") as fh:
        m = pickle.load(fh).tocsr()
    _forged(rel / "valMat.pkl", "csr", **change(m))


CASES = [  # (case, how the release is broken, the one line's words)
    ("COO claiming 10^12 x 10^12", lambda rel: _forged(rel / "trnMat.pkl", "coo", shape=(10**12, 10**12)),
     "trnMat.pkl: not a valid sparse matrix (shape (1000000000000, 1000000000000) is outside 1..2147483647"),
    ("CSR with a short indptr", lambda rel: _csr_state(rel, lambda m: {"indptr": m.indptr[:-2]}),
     "valMat.pkl: not a valid sparse matrix (its indptr (length 5) does not describe 6 rows"),
    ("CSR with a decreasing indptr", lambda rel: _csr_state(rel, lambda m: {"indptr": m.indptr[::-1].copy()}),
     "valMat.pkl: not a valid sparse matrix (its indptr"),
    ("CSR with an index out of range", lambda rel: _csr_state(rel, lambda m: {"indices": m.indices + 100}),
     "valMat.pkl: not a valid sparse matrix (a column index is outside 0..6)"),
    ("COO with arrays of different lengths", lambda rel: _forged(rel / "tstMat.pkl", "coo",
                                                                 data=np.ones(1000)),
     "tstMat.pkl: not a valid sparse matrix (its arrays differ in length"),
    ("object-dtype values", lambda rel: _forged(rel / "tstMat.pkl", "coo",
                                                data=np.array([1] * 6, dtype=object)),
     "tstMat.pkl: not a valid sparse matrix (its values have dtype object"),
    ("object-dtype features", lambda rel: np.save(rel / "image_feat.npy", np.array([[{}]] * 7, dtype=object),
                                                  allow_pickle=True),
     "image_feat.npy: not a readable NumPy array (ValueError: Array can't be memory-mapped: Python objects"),
    ("features of 1e6", lambda rel: np.save(rel / "audio_feat.npy", np.full((7, 4), 1e6, np.float32)),
     "audio_feat.npy: 28 value(s) are not finite as float16 (first at row 0, column 0: 1000000.0; float16 "
     "holds |x| <= 65504)"),
    ("an Inf feature", lambda rel: np.save(rel / "audio_feat.npy", np.where(np.eye(7, 4) > 0, np.inf, 0.5)
                                           .astype(np.float32)),
     "audio_feat.npy: 4 value(s) are not finite as float16 (first at row 0, column 0: inf"),
    ("a NaN feature", lambda rel: np.save(rel / "image_feat.npy", np.full((7, 4), np.nan, np.float32)),
     "image_feat.npy: 28 value(s) are not finite as float16"),
]


@pytest.mark.parametrize("case, breaker, words", CASES, ids=[c[0] for c in CASES])
def test_forged_release_is_one_line_and_leaves_nothing(tiny: Path, tmp_path: Path,  # noqa: F811
                                                       capsys: pytest.CaptureFixture, case: str, breaker,
                                                       words: str) -> None:
    rel, root = tmp_path / "release", tmp_path / "data"
    make_release(tiny, rel)
    breaker(rel)
    root.mkdir()
    argv = ["data", "convert", "tiktok", "--src", str(rel), "--data-dir", str(root)]
    assert main(argv) == 2
    one_error_line(capsys, words)
    assert list(root.iterdir()) == []  # no half-converted folder, no staging folder
    make_release(tiny, tmp_path / "fixed")  # the same command with good files converts: nothing blocks it
    assert main([*argv[:4], str(tmp_path / "fixed"), *argv[5:]]) == 0
    assert sorted(p.name for p in (root / "tiktok").iterdir()) == ["audio_feat.npy", "image_feat.npy", "tiktok.inter"]
    capsys.readouterr()
