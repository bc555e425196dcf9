"""Reviewer-score analyses: quality states, shares, the η sweep and ROC against planted corruption."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from r2mr.report import quality as analysis


def test_area_labels_follow_the_three_areas() -> None:
    s = {"text": np.array([0.9, 0.9, 0.1, 0.1, 0.5]), "image": np.array([0.8, 0.2, 0.7, 0.3, 0.5])}
    states = analysis.area_labels(s, 0.5)
    assert states.tolist() == ["high-quality", "disparity", "disparity", "low-quality", "high-quality"]  # ≥ η
    assert analysis.area_labels(s, {"text": 0.95, "image": 0.1}).tolist()[:2] == ["disparity", "disparity"]
    shares = analysis.state_shares(states)
    assert shares.tolist() == [0.4, 0.4, 0.2] and list(shares.index) == list(analysis.STATES)
    assert analysis.disparity_direction(s).tolist() == [1, 1]
    with pytest.raises(ValueError, match="two modalities"):
        analysis.area_labels({"text": s["text"]})


def test_eta_sweep_moves_items_from_high_to_low() -> None:
    rng = np.random.default_rng(0)
    s = {"text": rng.uniform(size=500), "image": rng.uniform(size=500)}
    sweep = analysis.eta_sweep(s, [0.0, 0.5, 1.0])
    assert sweep.loc[0.0, "high-quality"] == 1.0 and sweep.loc[1.0, "low-quality"] == 1.0
    assert np.allclose(sweep.sum(axis=1), 1.0)
    assert sweep.loc[0.5, "disparity"] == pytest.approx(0.5, abs=0.06)


def test_roc_perfect_chance_and_table() -> None:
    y = np.array([True, True, False, False, False])
    _, _, auc = analysis.roc(np.array([0.1, 0.2, 0.8, 0.9, 0.7]), y)
    assert auc == 1.0  # every corrupted item scores below every clean one
    assert analysis.roc(np.array([0.9, 0.8, 0.1, 0.2, 0.3]), y)[2] == 0.0
    table = analysis.detection_table({"text": np.array([0.1, 0.6, 0.8, 0.9, 0.2])}, {"text": y})
    row = table.loc["text"]
    assert row["AUC"] == pytest.approx(5 / 6) and row["flagged at η"] == 2
    assert row["recall at η"] == 0.5 and row["precision at η"] == 0.5
    with pytest.raises(ValueError):
        analysis.roc(np.ones(3), np.zeros(3, bool))


def test_corruption_masks_from_the_quality_table() -> None:
    q = pd.DataFrame({"item": [0, 1, 2, 0, 1, 2], "modality": ["text"] * 3 + ["image"] * 3,
                      "corrupted": [True, False, False, False, False, True]})
    masks = analysis.corruption_masks(q, 3)
    assert masks["text"].tolist() == [True, False, False] and masks["image"].tolist() == [False, False, True]


ART = {"modalities": ["text", "image"], "eta": 0.5, "scores": np.array([[0.9, 0.2], [0.6, 0.7], [0.1, 0.3]]),
       "rewritten": {"text": np.array([False, False, True]), "image": np.array([True, False, False])},
       "rewrite_rounds": [
           {"round": 1, "epoch": 6, "n_low": 1, "n_disparity": 2, "n_high": 1,
            "directions": {"text->image": {"candidates": 2, "accepted": 1, "mean_score_before": 0.2,
                                           "mean_score_generated": 0.6, "mean_score_after": 0.4}}},
           {"round": 2, "epoch": 12, "n_low": 0, "n_disparity": 1, "n_high": 3, "directions": {}}]}


def test_artifact_views() -> None:
    s = analysis.scores_of(ART)
    assert list(s) == ["text", "image"] and s["image"].tolist() == [0.2, 0.7, 0.3]
    table = analysis.rounds_table(ART)
    assert table.loc[1, "share disparity"] == 0.5 and table.loc[2, "share high"] == 0.75
    assert table.loc[1, "text->image accepted"] == 1 and np.isnan(table.loc[2, "text->image accepted"])
    assert analysis.rewrite_totals(ART) == {"rounds": 2, "candidates": 2, "accepted": 1, "rows rewritten": 2}
    assert analysis.rounds_table({"rewrite_rounds": []}).empty


def test_tie_rules_and_saturation() -> None:
    # saturated scores: the two rules disagree exactly on items sitting at η = 0.5
    s = {"text": np.array([0.5, 1.0, 0.5, 0.0]), "image": np.array([0.5, 0.5, 0.0, 1.0])}
    assert analysis.area_labels(s, 0.5, strict=True).tolist() == ["low-quality", "disparity", "low-quality",
                                                                   "disparity"]
    t = analysis.tie_rule_shares(s, 0.5)
    assert t.loc["s ≥ η (code)"].tolist() == [0.5, 0.5, 0.0]
    assert t.loc["s > η (paper)"].tolist() == [0.0, 0.5, 0.5]
    assert analysis.disparity_direction(s, 0.5, strict=True).tolist() == [1, 1]
    assert analysis.eta_sweep(s, [0.5], strict=True).loc[0.5, "low-quality"] == 0.5
    sat = analysis.saturation({"text": np.array([0.0, 0.5, 1.0, 0.7]), "image": np.array([1.0, 1 - 1e-8, 0.3, 0.2])})
    assert sat.loc["text"].tolist() == [0.25, 0.25, 0.25]
    assert sat.loc["image", "share at 1"] == 0.5 and sat.loc["image", "share at 0"] == 0.0


def test_model_states_and_detection_per_state() -> None:
    before = {"epoch": 6, "scores": np.array([[0.1, 0.9], [0.8, 0.2], [0.9, 0.8]])}
    final = {**ART, "before_rewrite": before}
    best = {**ART, "scores": np.array([[0.2, 0.6], [0.7, 0.1], [0.1, 0.9]]), "epoch": 3}
    states = analysis.model_states(final, best)
    assert list(states) == ["before first rewrite", "best valid", "after training"]
    assert states["before first rewrite"]["modalities"] == ["text", "image"]  # taken from the run
    assert list(analysis.model_states(ART)) == ["after training"]
    corrupted = {"text": np.array([True, False, False]), "image": np.array([False, True, False])}
    auc = analysis.detection_by_state(states, corrupted)
    assert auc.loc["before first rewrite"].tolist() == [1.0, 1.0]  # corrupted rows score lowest
    assert auc.loc["best valid", "text"] == 0.5 and auc.loc["best valid", "image"] == 1.0
    assert auc.loc["after training", "image"] == 0.0  # the corrupted item (0.7) scores highest


def test_over_seeds_gives_mean_sample_std_and_n_in_the_first_tables_row_order() -> None:
    import pandas as pd

    from r2mr.report.reviewer_tables import over_seeds, per_seed

    idx = pd.MultiIndex.from_tuples([("syn", "best valid"), ("syn", "after training")], names=["data set", "state"])
    a = pd.DataFrame({"AUC": [0.6, 0.5], "items": [10, 10]}, index=idx)
    b = pd.DataFrame({"AUC": [0.4, 0.7], "items": [10, 10]}, index=idx[::-1])  # rows in the other order
    out = over_seeds({999: a, 1: b, 2: pd.DataFrame()})  # an empty table (a seed without runs) is skipped
    assert list(out.index) == list(idx) and list(out.columns) == ["AUC", "AUC std", "items", "items std", "n seeds"]
    assert out.loc[("syn", "best valid"), "AUC"] == pytest.approx(0.65)
    assert out.loc[("syn", "best valid"), "AUC std"] == pytest.approx(0.0707107, rel=1e-5)  # ddof=1
    assert out.loc[("syn", "after training"), "AUC"] == pytest.approx(0.45)
    assert (out["n seeds"] == 2).all() and (out["items std"] == 0).all()
    assert over_seeds({999: a})["AUC std"].isna().all()  # one seed: no spread
    assert per_seed({"syn": {999: "x", 1: "y"}, "tik": {999: "z"}}) == {999: {"syn": "x", "tik": "z"}, 1: {"syn": "y"}}
