"""Learning curves and selected epochs: hand-made records with known curves, bands over seeds that stop at
different epochs, the epoch limit, rewrite rounds before the selected epoch; the figure; and a real R2MR
record read back from the archive, whose history marks the rounds its artifacts list."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from r2mr.cli import archive_commands as archive_cli
from r2mr.report import curve_plots, curves, recompute
from r2mr.runs import archive, experiment


def _rec(seed: int, values: list[float], best: int, rounds: tuple[int, ...] = (), max_epochs: int = 1000,
         patience: int = 2) -> dict:
    hist = [{"epoch": e, "valid": {"recall@20": v}, "test": {"recall@20": v / 2},
             **({"extra": {"rewrite": {"round": rounds.index(e) + 1, "epoch": e}}} if e in rounds else {})}
            for e, v in enumerate(values)]
    return {"seed": seed, "best_epoch": best, "selected_by_test_epoch": best, "epochs_run": len(values),
            "config": {"max_epochs": max_epochs, "patience": patience, "stop_rule": "valid"}, "history": hist,
            "valid": hist[best]["valid"], "test": hist[best]["test"]}


GROUPS = {
    "MGCN": [_rec(1, [0.1, 0.3, 0.2, 0.2, 0.2], 1), _rec(2, [0.1, 0.5, 0.4, 0.4], 1)],
    "R2MR (quick size)": [_rec(1, [0.2, 0.1, 0.1, 0.1], 0, rounds=(1, 3)),  # selected before any round
                          _rec(2, [0.2, 0.25, 0.3, 0.1], 2, rounds=(1, 3))],
    "capped": [_rec(1, [0.1, 0.2, 0.3], 2, max_epochs=3)],  # still improving when the limit hit
}


def test_curve_frame_and_band_over_seeds_that_stop_at_different_epochs():
    cur = curves.curve_frame(GROUPS)
    assert len(cur) == 5 + 4 + 4 + 4 + 3 and set(cur.columns) == {"label", "seed", "epoch", "value"}
    band = curves.curve_band(cur)
    mg = band.loc["MGCN"]
    assert mg.loc[1, "mean"] == pytest.approx(0.4) and mg.loc[1, "std"] == pytest.approx(np.std([0.3, 0.5], ddof=1))
    assert mg.loc[4, "n seeds"] == 1 and np.isnan(mg.loc[4, "std"]) and mg.loc[4, "mean"] == pytest.approx(0.2)
    assert list(band.index.get_level_values("label").unique()) == list(GROUPS)
    test = curves.curve_band(curves.curve_frame(GROUPS, split="test"))
    assert test.loc[("MGCN", 1), "mean"] == pytest.approx(0.2)


def test_selected_epochs_limit_and_rounds():
    per = curves.selected_frame(GROUPS).set_index(["label", "seed"])
    assert per.loc[("R2MR (quick size)", 1), "rounds before selected"] == 0
    assert per.loc[("R2MR (quick size)", 2), "rounds before selected"] == 1  # the round after epoch 1
    assert per.loc[("R2MR (quick size)", 2), "rewrite rounds"] == 2
    assert per["limit bound"].sum() == 1 and per.loc[("capped", 1), "limit bound"]
    table = curves.selected_table(GROUPS)
    assert table.loc["MGCN", "selected epoch (min–max)"] == "1" and table.loc["MGCN", "rounds before selected"] == ""
    assert table.loc["R2MR (quick size)", "selected epoch (min–max)"] == "0–2"
    assert table.loc["R2MR (quick size)", "rounds before selected"] == "0–1"
    assert table.loc["capped", "limit bound"] == 1 and table.loc["MGCN", "limit bound"] == 0
    only_first = {"R2MR": GROUPS["R2MR (quick size)"][:1]}
    assert curves.selected_table(only_first).loc["R2MR", "rounds before selected"] == "Rewriter inactive"
    # a run stopped by patience exactly at the limit is not "bound": 0.3 at epoch 0, then 3 epochs lower
    assert not curves.selected_frame({"x": [_rec(1, [0.3, 0.1, 0.1, 0.1], 0, max_epochs=4)]})["limit bound"][0]
    pts = curves.selected_points(curves.curve_frame(GROUPS), curves.selected_frame(GROUPS))
    assert pts.set_index(["label", "seed"]).loc[("MGCN", 2), "value"] == pytest.approx(0.5)


def test_stop_rule_in_words_counts_the_runs_the_limit_ended():
    converged = curves.stop_rule_text(GROUPS["MGCN"] + GROUPS["R2MR (quick size)"])
    assert converged == "early stopping on valid recall@20 (patience 2), epoch limit 1000: the limit bound 0 of 4 runs"
    capped = [_rec(1, [0.1, 0.2, 0.3], 2, max_epochs=3, patience=20), _rec(2, [0.3, 0.2, 0.1], 0, max_epochs=3,
                                                                           patience=20)]
    assert curves.stop_rule_text(capped) == ("capped at 3 epochs (a tutorial, not evidence): the cap ended 2 of 2 "
                                             "runs")
    assert "bound 1 of 1" in curves.stop_rule_text(GROUPS["capped"])  # patience 2 < limit 3, still improving
    assert curves.stop_rule_text([]).startswith("n/a")


def test_rewrite_epochs_from_history_or_artifacts():
    assert curves.rewrite_epochs(GROUPS["R2MR (quick size)"][0]) == [1, 3]
    bare = {"history": [{"epoch": 0}]}
    assert curves.rewrite_epochs(bare, {"rewrite_rounds": [{"round": 1, "epoch": 4}]}) == [4]
    rf = curves.rewrite_frame(GROUPS)
    assert list(rf["epoch"]) == [1, 3, 1, 3] and list(rf["round"]) == [1, 2, 1, 2]


def test_learning_curve_figure():
    fig = curve_plots.learning_curves({"synthetic": GROUPS, "tiktok": {"MGCN": GROUPS["MGCN"]}})
    ax0, ax1, *rest = fig.axes
    assert ax0.get_title() == "synthetic" and ax1.get_title() == "tiktok" and not rest
    # bands only where two seeds ran: MGCN epochs 0-3 (4 points), R2MR 0-3, none for "capped" (one seed)
    fills = [c for c in ax0.collections if c.get_paths()]
    assert len(fills) == 2
    texts = [t.get_text() for t in ax0.get_legend().get_texts()]
    assert texts[0] == "MGCN (n = 2)" and texts[2] == "capped (n = 1)"
    markers = [ln for ln in ax0.lines if ln.get_marker() == "|"]
    assert len(markers) == 1 and len(markers[0].get_xdata()) == 4  # 2 rounds x 2 seeds, R2MR only
    plt.close(fig)


def test_real_r2mr_record_from_the_archive(small_root, tmp_path, monkeypatch):
    runs, root = tmp_path / "runs", tmp_path / "evidence"
    monkeypatch.setenv("R2MR_RUNS_DIR", str(runs))
    tiny = dict(dim=16, rw_hidden=(8,), rw_latent=8, rw_codebook=8, rw_code_dim=4, rw_prompt_dim=8,
                rw_disc_hidden=(8,), rw_first_epochs=1, rw_epochs=1, rewrite_every=1, max_rounds=2)
    res = experiment.train("r2mr", "small", data_dir=small_root, max_epochs=4, progress=False, seed=3,
                           overrides=tiny)
    archive_cli.add_from_store(runs, root)
    (recs,) = recompute.archived_records(root).values()
    entry = archive.read(archive.entries(root)[0], root)
    rounds = entry.doc["arrays"]["artifacts"]["rewrite_rounds"]
    assert curves.rewrite_epochs(recs[0]) == [int(r["epoch"]) for r in rounds] == [1, 2]
    per = curves.selected_frame({"R2MR": recs})
    assert per["selected epoch"][0] == res["best_epoch"]
    assert per["rounds before selected"][0] == sum(e <= res["best_epoch"] for e in (1, 2))
    assert per["limit bound"][0] == (res["epochs_run"] == 4)
