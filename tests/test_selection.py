"""Selection rules: MMRec's validation early stopping and the official test-based rule (spec 9.3)."""

from __future__ import annotations

import numpy as np
import pytest

from r2mr.evaluation.epoch_selection import by_valid, official_test_rule

# Test R@10, R@20, N@10, N@20 per epoch of the authors' committed Clothing log (spec section 14).
LOGGED_TEST = [
    (.0591, .0855, .0323, .0390),  # 0
    (.0637, .0913, .0348, .0418),  # 1
    (.0659, .0952, .0362, .0436),  # 2
    (.0675, .0958, .0368, .0440),  # 3
    (.0680, .0982, .0371, .0448),  # 4
    (.0699, .0997, .0382, .0457),  # 5
    (.0685, .0982, .0379, .0454),  # 6
    (.0690, .0988, .0380, .0456),  # 7
    (.0694, .1003, .0381, .0459),  # 8
    (.0698, .1006, .0381, .0459),  # 9
    (.0685, .1000, .0378, .0458),  # 10
    (.0691, .1005, .0381, .0461),  # 11
    (.0686, .0992, .0380, .0458),  # 12
    (.0689, .0995, .0380, .0458),  # 13
    (.0695, .1003, .0383, .0461),  # 14
    (.0693, .0997, .0384, .0462),  # 15
    (.0697, .0999, .0387, .0464),  # 16
    (.0692, .1009, .0385, .0465),  # 17
    (.0691, .1008, .0385, .0465),  # 18
    (.0696, .1011, .0384, .0464),  # 19
    (.0696, .1006, .0381, .0460),  # 20
    (.0699, .1003, .0385, .0462),  # 21
    (.0692, .1006, .0384, .0464),  # 22
    (.0703, .1013, .0388, .0466),  # 23
    (.0697, .1008, .0386, .0465),  # 24
    (.0697, .1004, .0383, .0461),  # 25
    (.0706, .1011, .0387, .0464),  # 26
    (.0700, .1014, .0385, .0465),  # 27
    (.0696, .1013, .0382, .0463),  # 28
    (.0699, .1011, .0384, .0463),  # 29
    (.0695, .1015, .0383, .0465),  # 30
    (.0702, .1013, .0385, .0464),  # 31
    (.0707, .1019, .0389, .0468),  # 32
    (.0708, .1021, .0389, .0468),  # 33
    (.0707, .1017, .0386, .0465),  # 34
    (.0703, .1023, .0386, .0467),  # 35
    (.0705, .1022, .0388, .0469),  # 36
    (.0707, .1022, .0389, .0469),  # 37
    (.0707, .1023, .0387, .0468),  # 38
    (.0711, .1028, .0390, .0471),  # 39
    (.0706, .1030, .0387, .0470),  # 40
    (.0703, .1024, .0387, .0469),  # 41
    (.0706, .1024, .0388, .0468),  # 42
    (.0708, .1027, .0389, .0470),  # 43
    (.0713, .1028, .0390, .0470),  # 44
    (.0710, .1029, .0389, .0471),  # 45
    (.0714, .1031, .0392, .0473),  # 46
    (.0718, .1035, .0393, .0474),  # 47
    (.0716, .1027, .0391, .0470),  # 48
    (.0711, .1031, .0390, .0472),  # 49
    (.0711, .1033, .0390, .0471),  # 50
    (.0706, .1031, .0389, .0472),  # 51
    (.0710, .1032, .0390, .0472),  # 52
    (.0716, .1035, .0393, .0474),  # 53
    (.0709, .1038, .0392, .0476),  # 54
    (.0712, .1034, .0393, .0475),  # 55
    (.0713, .1034, .0392, .0474),  # 56
    (.0711, .1030, .0393, .0474),  # 57
    (.0720, .1032, .0395, .0475),  # 58
    (.0718, .1035, .0394, .0475),  # 59
    (.0718, .1041, .0394, .0476),  # 60
    (.0720, .1036, .0394, .0474),  # 61
    (.0719, .1033, .0395, .0475),  # 62
    (.0721, .1037, .0396, .0476),  # 63
    (.0719, .1032, .0395, .0474),  # 64
    (.0719, .1033, .0395, .0475),  # 65
    (.0718, .1033, .0394, .0475),  # 66
    (.0715, .1033, .0394, .0475),  # 67
    (.0718, .1033, .0394, .0475),  # 68
    (.0718, .1033, .0394, .0475),  # 69
    (.0718, .1033, .0394, .0475),  # 70
    (.0718, .1034, .0394, .0475),  # 71
    (.0718, .1032, .0394, .0474),  # 72
    (.0718, .1033, .0394, .0474),  # 73
]


def as_history(rows: list[tuple[float, ...]]) -> list[dict]:
    keys = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    return [{"test": dict(zip(keys, r)), "valid": dict(zip(keys, r))} for r in rows]


def test_official_rule_replays_the_log() -> None:
    """The logged run stopped after epoch 73 and reported epoch 63."""
    sel = official_test_rule(as_history(LOGGED_TEST))
    assert (sel.stop_epoch, sel.best_epoch) == (73, 63)


def test_official_rule_counter_semantics() -> None:
    """Three non-improving metrics out of four add 3 per epoch; an improvement resets the counter."""
    flat = [(0.1, 0.1, 0.1, 0.1)] * 20
    sel = official_test_rule(as_history(flat), stopping_step=40)
    # epoch 0 improves all four (counter 0); each later epoch adds 4: > 40 first after epoch 11 (44)
    assert (sel.best_epoch, sel.stop_epoch) == (0, 11)


def test_by_valid_patience() -> None:
    vals = [0.1, 0.2, 0.3] + [0.25] * 30
    hist = [{"valid": {"recall@20": v}, "test": {}} for v in vals]
    sel = by_valid(hist, "recall@20", patience=20)
    assert sel.best_epoch == 2 and sel.stop_epoch == 23  # 21 epochs without improvement after epoch 2
    assert by_valid(hist[:23], "recall@20", 20).stop_epoch is None


def test_by_valid_first_of_ties() -> None:
    hist = [{"valid": {"recall@20": v}, "test": {}} for v in (0.1, 0.3, 0.3, 0.2)]
    assert by_valid(hist).best_epoch == 1


# ---- selection bias ---------------------------------------------------------------------------------------------

def _run(seed: int, valid_sel: float, test_sel: float, valid: float = 0.1) -> dict:
    return {"seed": seed, "valid": {"recall@20": valid}, "test": {"recall@20": valid_sel},
            "test_selected_by_test": {"recall@20": test_sel}}


def test_selection_bias_per_epoch_and_grid() -> None:
    import math

    from r2mr.report.selection_bias import selection_bias_table

    runs = {"bpr": [_run(1, 0.10, 0.11), _run(2, 0.20, 0.22), _run(3, 0.10, 0.12)],
            "lightgcn": [_run(1, 0.08, 0.08)]}
    grid = [({"lr": 1}, _run(1, 0.10, 0.12, valid=0.30)), ({"lr": 2}, _run(1, 0.15, 0.16, valid=0.20)),
            ({"lr": 1}, _run(2, 0.10, 0.10, valid=0.30)), ({"lr": 2}, _run(2, 0.10, 0.13, valid=0.30))]
    t = selection_bias_table(runs, {"bpr": grid})
    epoch = t.loc[("bpr", "best test epoch")]
    assert epoch["abs diff"] == pytest.approx((0.01 + 0.02 + 0.02) / 3)
    assert epoch["rel diff"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)  # 0.01/0.10, 0.02/0.20, 0.02/0.10
    assert epoch["n seeds"] == 3 and epoch["abs diff std"] == pytest.approx(np.std([0.01, 0.02, 0.02], ddof=1))
    # seed 1: valid picks lr 1 (test 0.10), test picks lr 2 (0.15); seed 2: tie in valid -> lr 1 (0.10), best 0.10
    point = t.loc[("bpr", "best test grid point")]
    assert point["validation-selected"] == pytest.approx(0.10) and point["test-selected"] == pytest.approx(0.125)
    both = t.loc[("bpr", "both")]  # best test-selected epoch over the points: 0.16 and 0.13
    assert both["test-selected"] == pytest.approx(0.145)
    single = t.loc[("lightgcn", "best test epoch")]
    assert single["n seeds"] == 1 and math.isnan(single["abs diff std"]) and "±" not in single["abs"]
    assert ("lightgcn", "best test grid point") not in t.index
