"""Significance tests and cell format on synthetic numbers whose answer is known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from r2mr.core.errors import ConfigError, DataError
from r2mr.evaluation.evaluator import save_per_user
from r2mr.report import significance as sig


def test_holm_hand_computed_and_monotone() -> None:
    # sorted 0.01, 0.03, 0.04, 0.2 -> 4*0.01=0.04, 3*0.03=0.09, max(0.09, 2*0.04)=0.09, 0.2
    adj = sig.holm([0.01, 0.04, 0.03, 0.2])
    assert adj == pytest.approx([0.04, 0.09, 0.09, 0.2])
    p = np.array([0.3, 0.001, 0.02, 0.5, 0.04])
    a = sig.holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(a[order]) >= 0) and np.all(a >= p) and np.all(a <= 1)
    assert sig.holm([0.6, 0.7])[0] == 1.0  # capped at 1
    withnan = sig.holm([0.01, math.nan, 0.04])
    assert math.isnan(withnan[1]) and withnan[[0, 2]] == pytest.approx([0.02, 0.04])  # m = 2


def test_markers() -> None:
    assert [sig.marker(p) for p in (0.001, 0.02, 0.05, 0.5, math.nan)] == ["**", "*", "n.s.", "n.s.", "–"]


def test_identical_arrays_are_not_significant() -> None:
    rng = np.random.default_rng(0)
    users = pd.Series(rng.random(200), index=np.arange(200))
    assert sig.wilcoxon_users(users, users.copy()) == (1.0, 200)
    assert sig.ttest_seeds({1: 0.07, 2: 0.08}, {2: 0.08, 1: 0.07}) == (1.0, 2)


def test_constant_shift_is_highly_significant() -> None:
    rng = np.random.default_rng(1)
    b = pd.Series(rng.random(300), index=np.arange(300))
    p, n = sig.wilcoxon_users(b + 0.01, b)
    assert n == 300 and p < 1e-30
    p, n = sig.ttest_seeds({s: 0.08 + 0.001 * s + 0.01 for s in range(5)}, {s: 0.08 + 0.001 * s for s in range(5)})
    assert n == 5 and p < 1e-6
    noisy = {s: 0.08 + 0.01 + 0.0001 * (-1) ** s for s in range(5)}
    assert sig.ttest_seeds(noisy, {s: 0.08 for s in range(5)})[0] < 1e-6


def test_only_common_users_and_seeds_are_paired() -> None:
    a = pd.Series([1.0, 0.0, 1.0, 0.5], index=[0, 1, 2, 3])
    b = pd.Series([0.0, 0.0, 9.0], index=[0, 1, 7])
    assert sig.wilcoxon_users(a, b)[1] == 2
    assert sig.ttest_seeds({1: 0.1, 2: 0.2}, {2: 0.1, 3: 0.3}) == (pytest.approx(math.nan, nan_ok=True), 1)


def test_format_cell() -> None:
    assert sig.format_cell([0.0712]) == "0.0712 (n=1)"
    assert "±" not in sig.format_cell([0.0712])
    assert sig.format_cell([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000 (n=3)"  # sample std (ddof=1)
    assert sig.format_cell([]) == "–" and sig.format_cell([math.nan, 0.5]) == "0.5000 (n=1)"
    assert math.isnan(sig.mean_std_n([0.3])[1])


def _runs(tmp: Path, label: str, base: np.ndarray, shift: float, seeds: list[int]) -> list[tuple[dict, Path]]:
    out, users = [], np.arange(len(base))
    for s in seeds:
        vals = np.clip(base + shift + 0.001 * s, 0, None)
        folder = tmp / f"{label}-{s}"
        folder.mkdir()
        save_per_user(folder / "per_user.npz", {"by_valid": {"epoch": 3, "test": {"users": users, "recall@20": vals}}})
        out.append(({"model": label, "seed": s, "test": {"recall@20": float(vals.mean())}, "per_user": "per_user.npz"},
                    folder))
    return out


def test_table_from_stored_runs(tmp_path: Path) -> None:
    base = np.random.default_rng(2).random(400) * 0.2
    groups = {"R2MR": _runs(tmp_path, "r2mr", base, 0.02, [1, 2, 3]),
              "BPR": _runs(tmp_path, "bpr", base, 0.0, [1, 2, 3]),
              "twin": _runs(tmp_path, "twin", base, 0.02, [1, 2, 3])}
    table = sig.table_from_results(groups, sig.against("R2MR", ["BPR", "twin"]))
    better, same = table.loc[("R2MR", "BPR")], table.loc[("R2MR", "twin")]
    assert better["diff"] == pytest.approx(0.02) and better["rel diff"] == pytest.approx(0.02 / better["mean B"])
    assert better["n users"] == 400 and better["n seeds"] == 3
    assert better["sig wilcoxon"] == "**" and better["sig t-test"] == "**"
    assert same["p wilcoxon"] == 1.0 and same["sig wilcoxon"] == "n.s." and same["sig t-test"] == "n.s."
    assert sig.against("full", ["a", "full"], reference_first=False) == [("a", "full")]
    with pytest.raises(ConfigError, match="no runs for LATTICE"):
        sig.table_from_results(groups, [("R2MR", "LATTICE")])
    old = [({"model": "x", "seed": 1, "test": {"recall@20": 0.1}}, tmp_path)]
    with pytest.raises(DataError, match="no per-user metrics"):
        sig.run_set(old)
