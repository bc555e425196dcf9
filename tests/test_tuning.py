"""The declared tuning grids: equal budgets, valid keys, and selection on validation only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from r2mr.core.errors import ConfigError
from r2mr.models import MODELS
from r2mr.runs import tuning


def test_committed_grids_have_equal_budgets() -> None:
    plan = tuning.load()
    assert plan.points >= 6 and set(plan.models) == set(MODELS)
    for model, grid in plan.models.items():
        for dataset in [None, "tiktok", "baby", *grid.datasets]:
            pts = tuning.points(plan, model, dataset)
            assert len(pts) == plan.points, (model, dataset)
    r2mr = tuning.points(plan, "r2mr")
    assert {p["lr"] for p in r2mr} == {1e-3, 5e-4, 2.5e-4} and {p["knn_hop"] for p in r2mr} == {True, False}
    assert all(p["dropout"] == 0.3 for p in tuning.points(plan, "bm3", "tiktok"))
    assert all(p["dropout"] == 0.5 for p in tuning.points(plan, "bm3", "baby"))


def _write(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(tuning.DEFAULT.read_text())
    edit(raw)
    path = tmp_path / "tuning.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_unequal_unknown_or_missing_grids_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'bpr' has 5 grid points, the budget is 6"):
        tuning.load(_write(tmp_path, lambda r: r["models"]["bpr"]["grid"]["reg_weight"].pop()))
    with pytest.raises(ConfigError, match="unknown config key 'n_layer'"):
        tuning.load(_write(tmp_path, lambda r: r["models"]["lightgcn"]["grid"].update(
            n_layer=r["models"]["lightgcn"]["grid"].pop("n_layers"))))
    with pytest.raises(ConfigError, match="mgcn have no grid"):
        tuning.load(_write(tmp_path, lambda r: r["models"].pop("mgcn")))
    with pytest.raises(ConfigError, match="'bm3' on 'tiktok' has 2 grid points"):
        tuning.load(_write(tmp_path, lambda r: r["models"]["bm3"]["datasets"]["tiktok"].update(
            grid={"n_layers": [1, 2]})))


def _res(valid: float, test: float) -> dict:
    return {"valid": {"recall@20": valid}, "test": {"recall@20": test}}


def test_select_by_mean_valid_ignores_test() -> None:
    a, b, c = {"lr": 1e-3}, {"lr": 5e-4}, {"lr": 2.5e-4}
    results = [(a, _res(0.10, 0.50)), (a, _res(0.06, 0.50)),  # mean valid 0.08, best test by far
               (b, _res(0.09, 0.01)), (b, _res(0.09, 0.02)),  # mean valid 0.09 -> selected
               (c, _res(0.12, 0.01)), (c, _res(0.04, 0.01))]  # best single seed, mean 0.08
    chosen, table = tuning.select(results)
    assert chosen == b
    assert table["selected"].tolist() == [False, True, False]
    assert table["best test"].tolist() == [True, False, False]
    assert table["n seeds"].tolist() == [2, 2, 2]
    assert table["valid recall@20"].tolist() == pytest.approx([0.08, 0.09, 0.08])
    # raising every test value of another point changes nothing
    boosted = [(ov, _res(r["valid"]["recall@20"], 0.9)) if ov is c else (ov, r) for ov, r in results]
    assert tuning.select(boosted)[0] == b


def test_select_ties_go_to_the_first_point() -> None:
    results = [({"x": 2}, _res(0.1, 0.0)), ({"x": 1}, _res(0.1, 0.3))]
    assert tuning.select(results)[0] == {"x": 2}
    with pytest.raises(ConfigError):
        tuning.select([])


def test_select_refuses_mixed_models() -> None:
    with pytest.raises(ConfigError, match="mix"):
        tuning.select([({"x": 1}, {**_res(0.1, 0.1), "model": "bpr"}), ({"x": 2}, {**_res(0.1, 0.1), "model": "vbpr"})])


def test_selection_on_a_grid_edge_is_named() -> None:
    grid = [{"lr": lr, "knn_hop": hop, "reg": reg} for lr in (1e-3, 5e-4, 2.5e-4) for hop in (True, False)
            for reg in (0.0, 0.1)]
    assert tuning.grid_edges(grid, {"lr": 2.5e-4, "knn_hop": False, "reg": 0.1}) == "lr=0.00025 (min of 3)"
    assert tuning.grid_edges(grid, {"lr": 1e-3, "knn_hop": True, "reg": 0.0}) == "lr=0.001 (max of 3)"
    assert tuning.grid_edges(grid, {"lr": 5e-4, "knn_hop": True, "reg": 0.0}) == ""  # inside; 2-value keys skipped
    results = [({"lr": lr}, _res(v, 0.1)) for lr, v in ((1e-3, 0.1), (5e-4, 0.2), (2.5e-4, 0.3))]
    table = tuning.select(results)[1]
    assert table["selected at grid edge"].tolist() == ["", "", "lr=0.00025 (min of 3)"]
