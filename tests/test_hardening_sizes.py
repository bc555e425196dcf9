"""Issue 22, sizes: widths, counts and k's are checked against the data, and the model's bytes against a memory
limit, before the model is built: one line, exit 2, naming the key, the estimate and the fix; nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from r2mr.cli.main import main
from r2mr.data.synth import SynthConfig, write
from r2mr.models import get_model
from r2mr.training import sizes
from r2mr.training.trainer import TrainConfig

from .test_hardening import one_error_line


@pytest.fixture(scope="module")
def few_items(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 items with 128- and 256-d features: fewer items than the automatic PCA width would be."""
    root = tmp_path_factory.mktemp("few")
    write(root / "few", SynthConfig(n_users=120, n_items=60, text_dim=128, image_dim=256, mean_interactions=8.0))
    return root


def train(root: Path, run: Path, model: str, *sets: str) -> int:
    return main(["train", "--model", model, "--dataset", "few", "--data-dir", str(root), "--run-dir", str(run),
                 "--epochs", "1", "--no-progress", *[a for kv in sets for a in ("--set", kv)]])


def test_r2mr_defaults_fit_a_set_with_fewer_items_than_the_pca_width(few_items: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="r2mr.models.r2mr.features")
    status = train(few_items, tmp_path / "run", "r2mr", "rw_first_epochs=1", "rw_hidden=[32,32]", "rw_latent=64",
                   "rw_codebook=16", "rw_prompt_dim=8", "rw_disc_hidden=[8,8]")
    assert status == 0, capsys.readouterr().err
    assert "features text: (57, 128) -> (57, 57) (PCA + tanh)" in caplog.text  # d = min(384, 128, 57 items)


CASES = [  # (model, --set values, the one line's words)
    ("r2mr", ["dim=100"], "config key 'dim': 100 is more than the 57 items of data set 'few'; fix: set dim <= 57"),
    ("bpr", ["topk=[10,20,100000]"], "config key 'topk': [10, 20, 100000] asks for more items than the 57 of data "
                                   "set 'few'; fix: set topk to values <= 57"),
    ("freedom", ["knn_k=100000"], "config key 'knn_k': 100000 is more than the 57 items of data set 'few'"),
    ("lattice", ["knn_k=61"], "config key 'knn_k': 61 is more than the 57 items"),
    ("r2mr", ["rw_hidden=[100000,100000]"], "config key 'rw_hidden': [100000, 100000] needs about "),
    ("r2mr", ["rw_codebook=100000000"], "config key 'rw_codebook': 100000000 needs about "),
    ("r2mr", ["rw_latent=1000000"], "config key 'rw_latent': 1000000 needs about "),
]


@pytest.mark.parametrize("model, sets, words", CASES, ids=[f"{m}:{s[0]}" for m, s, _ in CASES])
def test_oversized_value_is_one_line_before_any_work(few_items: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                    model: str, sets: list[str], words: str) -> None:
    run = tmp_path / "run"
    assert train(few_items, run, model, *sets) == 2
    line = one_error_line(capsys, words)
    if "needs about" in words:
        assert "over the memory limit of" in line and "fix: lower " in line and "R2MR_MEMORY_LIMIT" in line
    assert not run.exists()


def test_memory_limit_names_the_costliest_key_and_can_be_lifted(few_items: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(sizes.MEMORY_ENV, "1M")
    assert train(few_items, tmp_path / "a", "lightgcn", "embedding_size=4096") == 2
    line = one_error_line(capsys, "config key 'embedding_size': 4096 needs about ", "over the memory limit of 1.0 MB",
                          "fix: lower embedding_size, or raise the limit with R2MR_MEMORY_LIMIT (e.g. "
                          "R2MR_MEMORY_LIMIT=1G)")
    assert "(94 users, 57 items;" in line and not (tmp_path / "a").exists()
    monkeypatch.setenv(sizes.MEMORY_ENV, "1G")
    assert train(few_items, tmp_path / "b", "lightgcn", "embedding_size=4096") == 0
    monkeypatch.setenv(sizes.MEMORY_ENV, "lots")
    assert train(few_items, tmp_path / "c", "bpr") == 2
    one_error_line(capsys, "R2MR_MEMORY_LIMIT: 'LOTS' is not allowed (allowed: a byte count")


def test_default_limit_is_a_fraction_of_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv(sizes.MEMORY_ENV, raising=False)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < sizes.memory_limit() <= total * sizes.MEMORY_FRACTION
    monkeypatch.setenv(sizes.MEMORY_ENV, "2.5G")
    assert sizes.memory_limit() == int(2.5 * 2**30)


@pytest.mark.parametrize("model", ["bpr", "lightgcn", "vbpr", "lattice", "freedom", "bm3", "mgcn", "r2mr"])
def test_the_papers_runs_pass_on_a_16_gb_machine(model: str) -> None:
    """Every model's defaults on the largest data set of the paper (Clothing: 39,387 users, 23,033 items, 4096-d
    image and 384-d text features) stay well under 16 GB, so the check never refuses a real run."""
    cls = get_model(model)
    cost = sizes.estimate(cls.Config(), TrainConfig(**cls.train_defaults), 39387, 23033, {"image": 4096, "text": 384})
    assert 2**28 < sum(cost.values()) < 8 * 2**30
