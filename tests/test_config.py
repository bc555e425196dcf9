"""Strict configuration: unknown keys, type checks, YAML, model train defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from r2mr.core import config as cfgmod
from r2mr.core.errors import ConfigError
from r2mr.runs.experiment import make_configs
from r2mr.training.config import TrainConfig


def test_unknown_key_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'n_layer'; did you mean n_layers"):
        make_configs("lightgcn", {"n_layer": 3})


def test_types_coerced_and_checked() -> None:
    _, m, t = make_configs("lightgcn", {"n_layers": "3", "reg_weight": "1e-3", "lr": "0.01", "topk": "[10, 20, 100]",
                                        "valid_metric": "ndcg@100", "lr_clamp": "false"})
    assert (m.n_layers, m.reg_weight, t.lr, t.topk, t.lr_clamp) == (3, 1e-3, 0.01, (10, 20, 100), False)
    with pytest.raises(ConfigError, match="'n_layers': 'two' is not a valid int"):
        make_configs("lightgcn", {"n_layers": "two"})
    with pytest.raises(ConfigError, match="not a valid int"):
        make_configs("lightgcn", {"n_layers": "2.5"})
    with pytest.raises(ConfigError,
                       match=r"config key 'optimizer': sgd is not allowed \(allowed: one of adam, adamw\)"):
        make_configs("bpr", {"optimizer": "sgd"})


def test_unknown_model_lists_models() -> None:
    with pytest.raises(ConfigError, match="unknown model 'lightgnc' \\(did you mean lightgcn\\?\\)"):
        make_configs("lightgnc")


def test_yaml_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("n_layers: 4\nbatch_size: 512\n")
    _, m, t = make_configs("lightgcn", cfgmod.load_yaml(p))
    assert (m.n_layers, t.batch_size) == (4, 512)
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        cfgmod.load_yaml(p)
    p.write_text("n_layers: 4\nbatch_size: 512\nn_layers: 2\n")
    with pytest.raises(ConfigError, match="config key 'n_layers' is given twice \\(line 3\\)"):
        cfgmod.load_yaml(p)
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        cfgmod.load_yaml(tmp_path)
    with pytest.raises(ConfigError, match="is not key=value"):
        cfgmod.parse_overrides(["n_layers"])


def test_train_config_defaults_are_mmrec() -> None:
    t = TrainConfig()
    assert ((t.batch_size, t.lr, t.patience, t.valid_metric, t.optimizer, t.seed)
            == (2048, 1e-3, 20, "recall@20", "adam", 999))


def test_dataset_defaults_then_overrides(monkeypatch) -> None:
    from r2mr.models import MODELS

    class_default = MODELS["lightgcn"].Config().n_layers
    monkeypatch.setattr(MODELS["lightgcn"], "dataset_defaults", {"baby": {"n_layers": 7, "lr": 5e-4}})
    _, m, t = make_configs("lightgcn", dataset="baby")
    assert (m.n_layers, t.lr) == (7, 5e-4)
    _, m, _ = make_configs("lightgcn", {"n_layers": 1}, dataset="baby")
    assert m.n_layers == 1
    _, m, _ = make_configs("lightgcn", dataset="sports")
    assert m.n_layers == class_default != 7
