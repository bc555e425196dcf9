"""Reviewer-score analyses: quality states, shares, the η sweep and ROC against planted corruption."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from r2mr import analysis


def test_quality_states_follow_the_three_areas() -> None:
    s = {"text": np.array([0.9, 0.9, 0.1, 0.1, 0.5]), "image": np.array([0.8, 0.2, 0.7, 0.3, 0.5])}
    states = analysis.quality_states(s, 0.5)
    assert states.tolist() == ["high-quality", "disparity", "disparity", "low-quality", "high-quality"]  # ≥ η
    assert analysis.quality_states(s, {"text": 0.95, "image": 0.1}).tolist()[:2] == ["disparity", "disparity"]
    shares = analysis.state_shares(states)
    assert shares.tolist() == [0.4, 0.4, 0.2] and list(shares.index) == list(analysis.STATES)
    assert analysis.disparity_direction(s).tolist() == [1, 1]
    with pytest.raises(ValueError, match="two modalities"):
        analysis.quality_states({"text": s["text"]})


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
