"""Learning curves and selected epochs from run records (a store's ``result.json`` or an archived record).

Input everywhere: ``groups``, a mapping from a row label (``"MGCN"``, ``"R2MR (quick size)"``, an ablation)
to that configuration's run records, one per seed. A record holds ``seed``, ``best_epoch`` (selected on
validation Recall@20), ``selected_by_test_epoch`` (the official test rule), ``epochs_run``, ``config``
(``max_epochs``, ``patience``) and ``history``: one entry per epoch with ``epoch`` (0-based), ``valid`` and
``test`` metrics, and for R2MR ``extra.rewrite`` where a rewrite round ran after that epoch's training (the
round's statistics; the epoch's evaluation already sees the rewritten features).

* :func:`curve_frame`: tidy (label, seed, epoch, value) of one metric and split.
* :func:`curve_band`: per label and epoch the mean over seeds, sample std, min, max and the number of seeds
  still running (early stopping ends seeds at different epochs: late epochs average fewer seeds).
* :func:`selected_frame`: per label and seed the selected epochs, the epochs run, whether the epoch limit
  bound (the run stopped at ``max_epochs`` without early stopping) and the rewrite rounds up to the selected
  epoch; :func:`selected_table` summarises it per label ("Rewriter inactive" where no round preceded it).
* :func:`rewrite_frame`: per label, seed and round the epoch after which the round ran.

Pure pandas, no I/O; :func:`r2mr.report.recompute.archived_records` reads the records from the archive and
:mod:`r2mr.report.curve_plots` draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

Records = Mapping[str, Sequence[Mapping[str, Any]]]


def rewrite_epochs(record: Mapping[str, Any], artifacts: Mapping[str, Any] | None = None) -> list[int]:
    """The epochs after which a rewrite round ran, ascending: from the history's ``extra.rewrite`` entries,
    else from the artifacts' ``rewrite_rounds`` (each with an ``epoch``); none for other models."""
    found = [int(h["epoch"]) for h in record.get("history", []) if (h.get("extra") or {}).get("rewrite")]
    if not found and artifacts is not None:
        found = [int(r["epoch"]) for r in artifacts.get("rewrite_rounds", [])]
    return sorted(found)


def curve_frame(groups: Records, metric: str = "recall@20", split: str = "valid") -> pd.DataFrame:
    """Tidy learning curves: one row per label, seed and epoch with the ``split`` ``metric`` (columns
    ``label``, ``seed``, ``epoch``, ``value``)."""
    rows = [{"label": label, "seed": int(rec["seed"]), "epoch": int(h["epoch"]), "value": float(h[split][metric])}
            for label, recs in groups.items() for rec in recs for h in rec.get("history", [])]
    return pd.DataFrame(rows, columns=["label", "seed", "epoch", "value"])


def curve_band(curves: pd.DataFrame) -> pd.DataFrame:
    """Per label and epoch (index): ``mean``, ``std`` (ddof 1, NaN with one seed), ``min``, ``max`` over the
    seeds that reached that epoch, and ``n seeds`` (how many did)."""
    g = curves.groupby(["label", "epoch"], sort=False)["value"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "min": g.min(), "max": g.max(), "n seeds": g.size()})
    return out.sort_index(level="epoch", sort_remaining=False).reindex(
        list(dict.fromkeys(curves["label"])), level="label")


def rewrite_frame(groups: Records) -> pd.DataFrame:
    """Per label, seed and round (1-based) the epoch after which the round ran (columns ``label``, ``seed``,
    ``round``, ``epoch``); empty for models without rounds."""
    rows = [{"label": label, "seed": int(rec["seed"]), "round": i, "epoch": e}
            for label, recs in groups.items() for rec in recs for i, e in enumerate(rewrite_epochs(rec), 1)]
    return pd.DataFrame(rows, columns=["label", "seed", "round", "epoch"])


def _limit_bound(rec: Mapping[str, Any]) -> bool:
    """Whether the epoch limit, not the stop rule, ended the run: it ran ``max_epochs`` epochs and its stop
    rule (``config.stop_rule``: valid, official or both, as the trainer applies it) had not fired."""
    from ..evaluation.epoch_selection import by_valid, official_test_rule

    cfg, h = rec.get("config", {}), rec.get("history", [])
    limit = cfg.get("max_epochs")
    if limit is None or int(rec["epochs_run"]) < int(limit):
        return False
    rule = cfg.get("stop_rule", "valid")
    v = by_valid(h, cfg.get("valid_metric", "recall@20"), int(cfg.get("patience", 20))).stop_epoch is not None
    if rule == "valid":
        return not v
    o = official_test_rule(h, int(cfg.get("official_stopping_step", 40))).stop_epoch is not None
    return not (o if rule == "official" else v and o)


def selected_frame(groups: Records, metric: str = "recall@20") -> pd.DataFrame:
    """Per label and seed: ``selected epoch`` (valid rule), ``selected epoch (test rule)``, ``epochs run``,
    ``epoch limit``, ``limit bound``, ``rounds before selected`` (rewrite rounds at or before the selected
    epoch) and the valid and test ``metric`` there. Epochs are 0-based, as in the history."""
    rows = []
    for label, recs in groups.items():
        for rec in recs:
            best, rounds = int(rec["best_epoch"]), rewrite_epochs(rec)
            rows.append({"label": label, "seed": int(rec["seed"]), "selected epoch": best,
                         "selected epoch (test rule)": int(rec.get("selected_by_test_epoch", best)),
                         "epochs run": int(rec["epochs_run"]), "epoch limit": rec.get("config", {}).get("max_epochs"),
                         "limit bound": _limit_bound(rec), "rewrite rounds": len(rounds),
                         "rounds before selected": sum(e <= best for e in rounds),
                         f"valid {metric}": float(rec["valid"][metric]), f"test {metric}": float(rec["test"][metric])})
    return pd.DataFrame(rows)


def _span(values: pd.Series) -> str:
    lo, hi = int(values.min()), int(values.max())
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def selected_table(groups: Records, metric: str = "recall@20") -> pd.DataFrame:
    """Per label (index): seeds, the selected epoch (mean and min–max over seeds), epochs run (min–max), how
    many runs the epoch limit bound, and for R2MR the rewrite rounds before the selected epoch (min–max;
    "Rewriter inactive" where no round preceded it in any seed; blank for models without rounds)."""
    per = selected_frame(groups, metric)
    rows = {}
    for label, g in per.groupby("label", sort=False):
        has_rounds = bool(g["rewrite rounds"].max() > 0) or "r2mr" in str(label).lower()
        before = g["rounds before selected"]
        rows[label] = {"seeds": len(g), "selected epoch (mean)": float(g["selected epoch"].mean()),
                       "selected epoch (min–max)": _span(g["selected epoch"]),
                       "epochs run (min–max)": _span(g["epochs run"]),
                       "limit bound": int(g["limit bound"].sum()),
                       "rounds before selected": ("" if not has_rounds else "Rewriter inactive"
                                                  if before.max() == 0 else _span(before))}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("label")


def selected_points(curves: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """The curve value of each seed at its selected epoch (columns ``label``, ``seed``, ``epoch``,
    ``value``): where a plot marks the selection."""
    keys = selected[["label", "seed", "selected epoch"]].rename(columns={"selected epoch": "epoch"})
    out = keys.merge(curves, on=["label", "seed", "epoch"], how="left")
    return out[np.isfinite(out["value"].to_numpy(float))].reset_index(drop=True)


def stop_rule_text(records: Sequence[Mapping[str, Any]]) -> str:
    """The stop rule and epoch limit of ``records`` in words, with how often the limit bound, e.g. ``early
    stopping on valid recall@20 (patience 20), epoch limit 1000: bound 0 of 45 runs`` or ``capped at 5 epochs
    (a tutorial, not evidence): the cap ended 12 of 45 runs``; several limits are listed."""
    if not records:
        return "n/a (no finished run)"
    cfgs = [r.get("config", {}) for r in records]
    bound = sum(_limit_bound(r) for r in records)
    limits = sorted({int(c["max_epochs"]) for c in cfgs if c.get("max_epochs") is not None})
    metric = "/".join(sorted({str(c.get("valid_metric", "recall@20")) for c in cfgs}))
    patience = "/".join(str(p) for p in sorted({int(c.get("patience", 20)) for c in cfgs}))
    limit = "/".join(map(str, limits))
    rule = f"early stopping on valid {metric} (patience {patience})"
    if not limits:
        return f"{rule}, no epoch limit"
    if max(limits) < min(int(c.get("patience", 20)) for c in cfgs):  # early stopping could never act: a cap
        return f"capped at {limit} epochs (a tutorial, not evidence): the cap ended {bound} of {len(records)} runs"
    return f"{rule}, epoch limit {limit}: the limit bound {bound} of {len(records)} runs"

