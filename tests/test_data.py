"""Data layer: loading, statistics, the data-root rule and one clear error per malformed input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from r2mr.core.errors import DataError
from r2mr.core.paths import REPO_ROOT, data_root
from r2mr.data import format_log, load_dataset, statistics

from .conftest import TOY_ROWS, write_inter


def test_load_toy(toy_root: Path) -> None:
    ds = load_dataset("toy", toy_root)
    assert (ds.n_users, ds.n_items) == (3, 5)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (6, 2, 3)
    assert ds.modalities == ["text", "image"]  # canonical order, not file order
    assert ds.features["text"].dtype == np.float32 and ds.features["text"].shape == (5, 3)
    assert ds.train_csr()[0].indices.tolist() == [0, 1, 2]


def test_statistics_toy(toy_root: Path) -> None:
    st = statistics(load_dataset("toy", toy_root))
    assert st.loc["all", ["users", "items", "interactions"]].tolist() == [3, 5, 11]
    assert st.loc["train", ["users", "items", "interactions"]].tolist() == [3, 4, 6]
    assert st.loc["test", "avg_per_user"] == pytest.approx(1.0)
    assert st.loc["train", "sparsity"] == pytest.approx(1 - 6 / 12)
    assert "sparsity 50.00000%" in format_log(load_dataset("toy", toy_root))


def test_extra_columns_ignored(tmp_path: Path) -> None:
    df = pd.DataFrame(TOY_ROWS, columns=["userID", "itemID", "x_label"]).assign(rating=5, timestamp=1)
    write_inter(tmp_path / "toy", df)
    assert len(load_dataset("toy", tmp_path).train) == 6


def test_cold_start_rows_dropped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_inter(tmp_path / "toy", TOY_ROWS + [(3, 1, 2), (3, 2, 1)])  # user 3 has no training row
    ds = load_dataset("toy", tmp_path)
    assert ds.dropped_cold == 2 and 3 not in ds.test.users and ds.n_users == 4
    assert "dropped 2 valid/test row(s)" in caplog.text
    caplog.clear()
    assert load_dataset("toy", tmp_path, features=False).dropped_cold == 2
    assert "dropped" not in caplog.text  # reported once per file and process


def test_missing_amazon_set_suggests_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run `python -m r2mr data download baby`"):
        load_dataset("baby", tmp_path)
    with pytest.raises(DataError, match="run `python -m r2mr data synth --out"):
        load_dataset("synthetic", tmp_path)


def test_data_root_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("R2MR_DATA_DIR", raising=False)
    assert data_root(None) == REPO_ROOT / "data"  # the repository's data/ (r2mr.core.paths states the rule)
    monkeypatch.setenv("R2MR_DATA_DIR", "/env/root")
    assert data_root(None) == Path("/env/root")
    assert data_root("/cli/root") == Path("/cli/root")


def _save_text(path: Path, text: str) -> None:
    path.write_text(text)


def _truncated_npy(path: Path) -> None:
    np.save(path, np.ones((5, 4), np.float32))
    path.write_bytes(path.read_bytes()[:100])


def _pickled_npy(path: Path) -> None:
    np.save(path, np.array([{"a": 1}] * 5, dtype=object), allow_pickle=True)


# (case id, how to break a valid toy folder, words the one-line message must contain)
MALFORMED = [
    ("missing folder", lambda f: __import__("shutil").rmtree(f), ["toy.inter: not found", "put toy.inter"]),
    ("missing .inter", lambda f: (f / "toy.inter").unlink(), ["not found", "R2MR_DATA_DIR"]),
    ("empty file", lambda f: _save_text(f / "toy.inter", ""), ["file is empty"]),
    ("missing column", lambda f: _save_text(f / "toy.inter", "userID\titemID\n0\t0\n"), ["missing column(s) x_label"]),
    ("non-integer id", lambda f: _save_text(f / "toy.inter", "userID\titemID\tx_label\n0\tabc\t0\n1\t0\t0\n"),
     ["column itemID", "non-integer", "'abc'"]),
    ("float id", lambda f: _save_text(f / "toy.inter", "userID\titemID\tx_label\n0\t0.5\t0\n"), ["non-integer"]),
    ("ids not contiguous", lambda f: write_inter(f, [(0, 0, 0), (2, 1, 0), (0, 1, 1)]),
     ["userID must be 0-based and contiguous", "2 distinct ids in [0, 2]"]),
    ("ids not 0-based", lambda f: write_inter(f, [(1, 0, 0), (2, 0, 0)]), ["userID must be 0-based"]),
    ("bad x_label", lambda f: write_inter(f, TOY_ROWS[:-1] + [(2, 0, 3)]), ["x_label must be 0", "[3]"]),
    ("duplicate pair", lambda f: write_inter(f, TOY_ROWS + [(0, 1, 2)]), ["duplicate (userID, itemID)", "(0, 1)"]),
    ("empty train split", lambda f: write_inter(f, [(u, i, 1) for u, i, _ in TOY_ROWS]), ["train split", "is empty"]),
    ("feature rows", lambda f: np.save(f / "image_feat.npy", np.ones((4, 2), np.float32)),
     ["image_feat.npy", "4 rows but the data set has 5 items"]),
    ("NaN feature", lambda f: np.save(f / "image_feat.npy", np.array([[np.nan, 0]] + [[1, 1]] * 4, np.float32)),
     ["NaN/inf", "row 0"]),
    ("inf feature", lambda f: np.save(f / "text_feat.npy", np.array([[1, 1, 1]] * 4 + [[0, np.inf, 0]])),
     ["text_feat.npy", "NaN/inf", "row 4"]),
    ("truncated npy", lambda f: _truncated_npy(f / "image_feat.npy"), ["image_feat.npy", "not a readable .npy"]),
    ("not an npy", lambda f: _save_text(f / "audio_feat.npy", "hello"), ["audio_feat.npy", "no NumPy header"]),
    ("object npy", lambda f: _pickled_npy(f / "image_feat.npy"), ["image_feat.npy", "not a readable .npy"]),
    ("1-d features", lambda f: np.save(f / "image_feat.npy", np.ones(5, np.float32)), ["expected a 2-D matrix"]),
    ("integer features", lambda f: np.save(f / "image_feat.npy", np.ones((5, 2), np.int64)),
     ["expected a float matrix"]),
    ("empty valid split", lambda f: write_inter(f, [r for r in TOY_ROWS if r[2] != 1]),
     ["valid split (x_label 1) is empty"]),
    ("empty test split", lambda f: write_inter(f, [r for r in TOY_ROWS if r[2] != 2]),
     ["test split (x_label 2) is empty"]),
    ("zero-width features", lambda f: np.save(f / "text_feat.npy", np.ones((5, 0), np.float32)),
     ["text_feat.npy", "has 0 columns"]),
    ("over-wide features", lambda f: np.save(f / "image_feat.npy", np.zeros((5, 32769), np.float32)),
     ["image_feat.npy", "has 32,769 columns, more than the limit of 32,768", "R2MR_MAX_FEATURE_WIDTH=32769"]),
]


@pytest.mark.parametrize("case, breaker, words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_one_clear_error(toy_root: Path, case: str, breaker, words: list[str]) -> None:
    breaker(toy_root / "toy")
    with pytest.raises(DataError) as err:
        load_dataset("toy", toy_root)
    msg = str(err.value)
    assert "\n" not in msg and "fix:" in msg
    for w in words:
        assert w in msg, (case, msg)


def test_cli_reports_one_line_and_exit_2(toy_root: Path) -> None:
    np.save(toy_root / "toy" / "image_feat.npy", np.ones((4, 2), np.float32))
    proc = subprocess.run([sys.executable, "-m", "r2mr", "data", "check", "toy", "--data-dir", str(toy_root)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "4 rows but the data set has 5 items" in proc.stderr


def test_cli_check_prints_statistics(toy_root: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "r2mr", "data", "check", "toy", "--data-dir", str(toy_root)],
                          capture_output=True, text=True, check=True)
    assert "train  users         3  items        4  inters         6" in proc.stdout
    assert proc.stdout.strip().endswith("OK")
