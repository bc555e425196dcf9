"""Notebook 04 under ``run-all --no-train`` reads the committed R2MR benchmark back (nothing is measured), but only
a row measured on the same data and device kind."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from r2mr.core.paths import NO_TRAIN_ENV
from r2mr.report import benchmark as bench

SIZES = {"users": 100, "items": 50, "train_edges": 900}


@pytest.fixture()
def committed(tmp_path, monkeypatch):
    path = tmp_path / "r2mr_benchmark.csv"
    pd.DataFrame([{"scale": "tiny", "device": "cpu (x86_64, 1 threads)", **SIZES, "train_s_per_epoch": 1.5},
                  {"scale": "clothing", "device": "cuda (H200)", "users": 9, "items": 9, "train_edges": 9,
                   "train_s_per_epoch": 0.4}]).to_csv(path, index=False)
    monkeypatch.setattr(bench, "COMMITTED", path)
    return path


def test_committed_row_needs_same_sizes_and_device(committed):
    assert bench.committed_row("tiny", SIZES, "cpu", committed)["train_s_per_epoch"] == 1.5
    assert bench.committed_row("tiny", {**SIZES, "train_edges": 901}, "cpu", committed) is None
    assert bench.committed_row("tiny", SIZES, "cuda", committed) is None
    assert bench.committed_row("clothing", None, "cuda", committed)["train_s_per_epoch"] == 0.4
    assert bench.committed_row("other", SIZES, "cpu", committed) is None
    assert bench.committed_row("tiny", SIZES, "cpu", committed.with_name("absent.csv")) is None
    other = committed.with_name("other.csv")
    other.write_text("scale,seconds\ntiny,1.0\n")  # a table without the benchmark's columns: not read back
    assert bench.committed_row("tiny", SIZES, "cpu", other) is None


def test_read_back_only_under_no_train(committed, monkeypatch, caplog):
    monkeypatch.delenv(NO_TRAIN_ENV, raising=False)
    assert bench._read_back("tiny", SIZES, "cpu", 0.0) is None  # a full run measures here
    monkeypatch.setenv(NO_TRAIN_ENV, "1")
    assert bench._read_back("tiny", SIZES, "cpu", 5.0) is None  # asked to recompute
    with caplog.at_level(logging.INFO, logger=bench.log.name):
        assert bench._read_back("tiny", SIZES, "cpu", 0.0)["train_s_per_epoch"] == 1.5
    assert "committed measurement" in caplog.text and "without --no-train" in caplog.text
