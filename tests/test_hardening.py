"""Bad input never passes silently and never costs a file: each case is one line, exit status 2, and every
file that existed before is still there byte for byte (issue 11). CLI cases call ``r2mr.cli.main``."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from r2mr.cli.main import main
from r2mr.core.config import apply
from r2mr.core.config_rules import RULES, Validated, unruled
from r2mr.core.errors import ConfigError
from r2mr.data.synth import MARKER, SynthConfig
from r2mr.models import MODELS, get_model
from r2mr.models.bpr import BPR
from r2mr.models.r2mr.rewriter import RewriterConfig
from r2mr.training.config import TrainConfig

from .conftest import SMALL, TOY_ROWS, write_inter

REGISTERED = [TrainConfig, SynthConfig, RewriterConfig, *(m.Config for m in MODELS.values())]
SMALL_SET = [f"{k}={v}" for k, v in SMALL.items()]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_error_line(capsys: pytest.CaptureFixture, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith(("INFO ", "WARNING "))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# --- every config field has a declared rule ----------------------------------------------------------------

@pytest.mark.parametrize("cls", REGISTERED, ids=lambda c: c.__name__)
def test_every_config_field_has_a_rule(cls: type) -> None:
    assert issubclass(cls, Validated), f"{cls.__name__} must inherit r2mr.core.config_rules.Validated"
    assert unruled(cls) == [], f"add a rule to r2mr/core/config_rules.py RULES for {unruled(cls)}"
    cls()  # the defaults pass their own rules


def test_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="config key 'batch_size': 0 is not allowed"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="config key 'corrupt_text': 0.4 is not allowed .*the three sum to 1.3\\)"):
        SynthConfig(corrupt_text=0.4, corrupt_image=0.4, corrupt_both=0.5)  # shares sum above 1


def test_failed_override_names_the_key_and_keeps_rules_table_legible() -> None:
    cfg = TrainConfig()
    with pytest.raises(ConfigError, match="config key 'lr': nan is not allowed"):
        apply([cfg], {"lr": "nan"})
    assert all(r.allowed and "\n" not in r.allowed for r in RULES.values())


# (model, --set value, the one line's distinctive words)
CONFIG_CASES = [
    ("bpr", "batch_size=0",
     "config key 'batch_size': 0 is not allowed (allowed: an integer >= 1); fix: set batch_size"),
    ("bpr", "lr=-0.1", "config key 'lr': -0.1 is not allowed (allowed: a finite number > 0)"),
    ("bpr", "lr=nan", "config key 'lr': nan is not allowed"),
    ("bpr", "lr=0", "config key 'lr': 0.0 is not allowed"),
    ("bpr", "eval_batch_size=0", "config key 'eval_batch_size': 0 is not allowed"),
    ("bpr", "embedding_size=-3", "config key 'embedding_size': -3 is not allowed (allowed: an integer >= 1)"),
    ("vbpr", "embedding_size=0", "config key 'embedding_size': 0 is not allowed"),
    ("r2mr", "dim=-4", "config key 'dim': -4 is not allowed (allowed: an integer >= 0; 0 picks the width"),
    ("bm3", "dropout=1.5", "config key 'dropout': 1.5 is not allowed (allowed: a number in [0, 1))"),
    ("bpr", "topk=20",
     "config key 'topk': [20] is not allowed (allowed: a list of integers >= 1 that includes 10 and 20"),
    ("bpr", "valid_metric=foo@20", "config key 'valid_metric': foo@20 is not allowed"),
    ("bpr", "valid_metric=recall@5", "topk is [10, 20, 50]"),
    ("r2mr", "eta=2.0", "config key 'eta': 2.0 is not allowed (allowed: a number in (0, 1))"),
    ("r2mr", "eta=-1", "config key 'eta': -1.0 is not allowed"),
    ("freedom", "knn_k=0", "config key 'knn_k': 0 is not allowed (allowed: an integer >= 1)"),
    ("bpr", "patience=-1", "config key 'patience': -1 is not allowed (allowed: an integer >= 0; 0 stops"),
    ("r2mr", "content=noise", "config key 'content': noise is not allowed (allowed: one of real, random, frozen)"),
    ("r2mr", "rw_latent=1000", "config key 'rw_latent': 1000 is not allowed"),
    ("bpr", "optimizer=sgd", "config key 'optimizer': sgd is not allowed (allowed: one of adam, adamw)"),
    ("bpr", "seed=-1", "config key 'seed': -1 is not allowed (allowed: an integer in [0, 4294967295])"),
    ("BPR", "reg_weight=-1", "config key 'reg_weight': -1.0 is not allowed"),  # model names: any case
]


@pytest.mark.parametrize("model, kv, words", CONFIG_CASES, ids=[f"{m}:{kv}" for m, kv, _ in CONFIG_CASES])
def test_bad_config_value_is_one_line_before_any_work(toy_root: Path, tmp_path: Path, capsys, model: str, kv: str,
                                                      words: str) -> None:
    before = snapshot(toy_root)
    run = tmp_path / "run"
    rc = main(["train", "--model", model, "--dataset", "toy", "--data-dir", str(toy_root), "--set", kv,
               "--run-dir", str(run), "--no-progress"])
    assert rc == 2
    one_error_line(capsys, words)
    assert not run.exists() and snapshot(toy_root) == before


def test_model_names_are_case_insensitive(capsys) -> None:
    assert get_model("BPR") is BPR and get_model("LightGCN") is MODELS["lightgcn"]
    with pytest.raises(SystemExit) as exc:  # a usage error: argparse exits with status 2
        main(["train", "--model", "Bprr", "--dataset", "toy", "--data-dir", "/nonexistent"])
    assert exc.value.code == 2
    one_error_line(capsys, "invalid choice: 'bprr' (choose from 'bpr'")  # the CLI lists the valid names


# --- YAML config files -------------------------------------------------------------------------------------

def _unreadable(p: Path) -> None:
    p.write_text("lr: 0.01\n")
    p.chmod(0)  # root reads it anyway: the test also makes reading it fail as it would for a user


YAML_CASES = [
    ("duplicate key", lambda p: p.write_text("lr: 0.01\nbatch_size: 512\nlr: 0.1\n"),
     "config key 'lr' is given twice (line 3); fix: keep one"),
    ("a folder", lambda p: p.mkdir(), "is a folder, not a config file"),
    ("not UTF-8", lambda p: p.write_bytes(b"lr: 0.01\n# caf\xe9\n"), "not UTF-8 text (byte 14)"),
    ("missing", lambda p: None, "config file not found"),
    ("bad value inside", lambda p: p.write_text("embedding_size: 0\n"),
     "config key 'embedding_size': 0 is not allowed"),
    ("unreadable", _unreadable, "not readable (permission denied)"),
]


@pytest.mark.parametrize("case, make, words", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_bad_config_file_is_one_line(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, case: str, make,
                                    words: str) -> None:
    path = tmp_path / "c.yaml"
    make(path)
    if case == "unreadable" and os.access(path, os.R_OK):
        real = Path.read_text

        def denied(self: Path, *a, **k) -> str:
            if self == path:
                raise PermissionError(13, "Permission denied", str(path))
            return real(self, *a, **k)
        monkeypatch.setattr(Path, "read_text", denied)
    rc = main(["train", "--model", "bpr", "--dataset", "toy", "--data-dir", str(tmp_path), "--config", str(path)])
    assert rc == 2
    one_error_line(capsys, words, *([] if case == "bad value inside" else [str(path)]))


# --- data checks: `data check` and training report the same one line ---------------------------------------

DATA_CASES = [
    ("empty valid split", "bpr", lambda f: write_inter(f, [r for r in TOY_ROWS if r[2] != 1]),
     "the valid split (x_label 1) is empty; fix: label some rows 1"),
    ("empty test split", "bpr", lambda f: write_inter(f, [r for r in TOY_ROWS if r[2] != 2]),
     "the test split (x_label 2) is empty"),
    ("valid empty after cold drop", "bpr", lambda f: write_inter(f, [r for r in TOY_ROWS if r[2] != 1] + [(3, 0, 1)]),
     "is empty after dropping 1 row(s) of users with no training row"),
    ("zero-width features", "vbpr", lambda f: np.save(f / "image_feat.npy", np.ones((5, 0), np.float32)),
     "image_feat.npy: has 0 columns (no content)"),
    ("over-wide features", "vbpr", lambda f: np.save(f / "audio_feat.npy", np.ones((5, 9), np.float32)),
     "audio_feat.npy: has 9 columns, more than the limit of 8 (memory"),
]


@pytest.mark.parametrize("case, model, breaker, words", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_is_reported_by_check_and_by_training(toy_root: Path, tmp_path: Path, capsys,
                                                       monkeypatch: pytest.MonkeyPatch, case: str, model: str,
                                                       breaker, words: str) -> None:
    monkeypatch.setenv("R2MR_MAX_FEATURE_WIDTH", "8")
    breaker(toy_root / "toy")
    before = snapshot(toy_root)
    assert main(["data", "check", "toy", "--data-dir", str(toy_root)]) == 2
    line = one_error_line(capsys, words)
    run = tmp_path / "run"
    assert main(["train", "--model", model, "--dataset", "toy", "--data-dir", str(toy_root),
                 "--run-dir", str(run), "--no-progress"]) == 2
    assert one_error_line(capsys) == line and not run.exists() and snapshot(toy_root) == before


def test_feature_width_limit_can_be_lifted(toy_root: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    np.save(toy_root / "toy" / "audio_feat.npy", np.ones((5, 9), np.float32))
    monkeypatch.setenv("R2MR_MAX_FEATURE_WIDTH", "8")
    assert main(["data", "check", "toy", "--data-dir", str(toy_root)]) == 2
    one_error_line(capsys, "fix: reduce the width (e.g. PCA), or lift the limit with R2MR_MAX_FEATURE_WIDTH=9")
    monkeypatch.setenv("R2MR_MAX_FEATURE_WIDTH", "9")
    assert main(["data", "check", "toy", "--data-dir", str(toy_root)]) == 0
    assert "audio 9-d" in capsys.readouterr().out
    monkeypatch.setenv("R2MR_MAX_FEATURE_WIDTH", "lots")
    assert main(["data", "check", "toy", "--data-dir", str(toy_root)]) == 2
    one_error_line(capsys, "R2MR_MAX_FEATURE_WIDTH: 'lots' is not allowed")


# --- data synth never removes what it did not write ---------------------------------------------------------

def _other_set(out: Path) -> None:
    write_inter(out / "baby", TOY_ROWS)  # the data root, holding a downloaded set
    np.save(out / "baby" / "image_feat.npy", np.ones((5, 2), np.float32))


SYNTH_REFUSED = [
    ("the data root", _other_set, ""),
    ("a folder of the user's", lambda out: (out.mkdir(), (out / "notes.txt").write_text("mine")), ""),
    ("a file", lambda out: out.write_text("mine"), "is not a folder"),
    ("an old set with a user file", lambda out: (out.mkdir(), (out / "synth.yaml").write_text("seed: 0\n"),
                                                 (out / "notes.txt").write_text("mine")), ""),
]


@pytest.mark.parametrize("case, make, words", SYNTH_REFUSED, ids=[c[0] for c in SYNTH_REFUSED])
def test_synth_refuses_folders_it_did_not_make(tmp_path: Path, capsys, case: str, make, words: str) -> None:
    out = tmp_path / "target"
    make(out)
    before = snapshot(tmp_path)
    assert main(["data", "synth", "--out", str(out), *[a for kv in SMALL_SET for a in ("--set", kv)]]) == 2
    one_error_line(capsys, str(out), words or f"is not a synthetic set written by `r2mr data synth` (no {MARKER})")
    assert snapshot(tmp_path) == before


def test_synth_rewrites_only_its_own_files(tmp_path: Path, capsys) -> None:
    out = tmp_path / "synthetic"
    args = ["data", "synth", "--out", str(out), *[a for kv in SMALL_SET for a in ("--set", kv)]]
    assert main(args) == 0
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    (out / "mine" / "a.csv").write_text("1,2\n")
    theirs = {k: v for k, v in snapshot(out).items() if k in ("notes.txt", "mine/a.csv")}
    (out / "synthetic.inter").write_text("damaged")
    assert main([*args[:-2], "--seed", "1"]) == 0  # a rewrite with other settings
    after = snapshot(out)
    assert {k: after[k] for k in theirs} == theirs and after["synthetic.inter"] != b"damaged"
    assert '"seed": 1' in (out / MARKER).read_text() and '"complete": true' in (out / MARKER).read_text()
    capsys.readouterr()


def test_synth_into_an_empty_folder_and_after_a_kill(tmp_path: Path) -> None:
    from r2mr.data.synth import write

    out = tmp_path / "s"
    out.mkdir()
    write(out, SynthConfig(**SMALL))
    (out / "text_feat.npy").unlink()  # a killed run: marker written, files partly there
    (out / MARKER).write_text((out / MARKER).read_text().replace('"complete": true', '"complete": false'))
    write(out, SynthConfig(**SMALL))
    assert (out / "text_feat.npy").is_file()


# --- files follow the user's umask --------------------------------------------------------------------------

@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_follow_umask(tmp_path: Path, umask022) -> None:
    import pandas as pd

    from r2mr.core.atomic_io import save_torch, write_json, write_table
    from r2mr.data.synth import write

    out = write(tmp_path / "data" / "synthetic", SynthConfig(**SMALL))
    write_json(tmp_path / "res" / "r.json", {"a": 1})
    write_table(pd.DataFrame({"x": [1.0]}), tmp_path / "res" / "t")
    save_torch({"w": 1}, tmp_path / "res" / "ckpt.pt")
    from r2mr.data.graph import cached_knn  # the kNN cache in the runs folder

    cached_knn(np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32), 3, True, tmp_path / "res" / "cache")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 10
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    for d in (out, tmp_path / "res"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755, d


def test_registered_configs_are_dataclasses() -> None:
    assert all(dataclasses.is_dataclass(c) for c in REGISTERED)


@pytest.mark.parametrize("kwargs, key", [({"seed": -1}, "seed"), ({"seed": 2**32}, "seed"),
                                         ({"max_epochs": 0}, "max_epochs")])
def test_python_api_checks_seed_and_epochs(kwargs: dict, key: str) -> None:
    from r2mr.runs.experiment import make_configs

    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        make_configs("bpr", **kwargs)
