"""Analyses of the Modality Reviewer's per-item scores: quality states at a threshold η, their shares, how
they move with η, and how well low scores find the planted corruption of the synthetic set (ROC).

Pure functions on arrays and tables (no training, no I/O); the notebooks feed them the scores that an R2MR
run saved as artifacts.

Quality areas (R2MR, Fig. 2B): with two modalities a and b and scores s_a, s_b in [0, 1],
* high-quality: s_a ≥ η and s_b ≥ η;
* disparity: exactly one of them ≥ η (the item the Rewriter may repair);
* low-quality: s_a < η and s_b < η.
The official code compares with ≥ η, the paper writes > η (``strict=True``). The two would agree on
continuous scores, but the Reviewer's scores saturate at exactly 0, 0.5 and 1 (see :func:`saturation`), so
both rules are reported (:func:`tie_rule_shares`).

Which model state a statistic describes matters: an R2MR run saves the Reviewer's state after the last
epoch (``artifacts.pt``), at the best-validation epoch (``artifacts_best.pt``) and before its first rewrite
round (``artifacts["before_rewrite"]``); :func:`model_states` collects them as views for these functions.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

STATES = ("high-quality", "disparity", "low-quality")


def _good(s: np.ndarray, eta: float, strict: bool) -> np.ndarray:
    return np.asarray(s) > eta if strict else np.asarray(s) >= eta


def area_labels(scores: Mapping[str, np.ndarray], eta: float | Mapping[str, float] = 0.5,
                strict: bool = False) -> np.ndarray:
    """Per item (I,), the name of its quality area (one of :data:`STATES`) from the scores of (exactly) two
    modalities; ``eta`` may differ per modality (the official code has a text and an image threshold);
    ``strict``: a modality is good if s > η (paper) instead of s ≥ η (code). (Not to be confused with
    :func:`r2mr.models.r2mr.reviewer.quality_states`, the integer codes the model uses.)"""
    if len(scores) != 2:
        raise ValueError(f"quality areas need two modalities, got {list(scores)}")
    (ma, a), (mb, b) = scores.items()
    ea, eb = (eta[ma], eta[mb]) if isinstance(eta, Mapping) else (eta, eta)
    good_a, good_b = _good(a, ea, strict), _good(b, eb, strict)
    return np.select([good_a & good_b, good_a ^ good_b], STATES[:2], STATES[2])


def state_shares(states: np.ndarray) -> pd.Series:
    """Share of items per state, in :data:`STATES` order (zeros included)."""
    counts = pd.Series(states).value_counts().reindex(list(STATES), fill_value=0)
    return counts / max(len(states), 1)


def disparity_direction(scores: Mapping[str, np.ndarray], eta: float = 0.5, strict: bool = False) -> pd.Series:
    """Among disparity items: how many have only the first modality good, and how many only the second."""
    (ma, a), (mb, b) = scores.items()
    good_a, good_b = _good(a, eta, strict), _good(b, eta, strict)
    return pd.Series({f"{ma} good, {mb} poor": int((good_a & ~good_b).sum()),
                      f"{mb} good, {ma} poor": int((good_b & ~good_a).sum())})


def eta_sweep(scores: Mapping[str, np.ndarray], etas: Sequence[float], strict: bool = False) -> pd.DataFrame:
    """Shares of the three states for each threshold in ``etas`` (rows) — the η sensitivity of the split."""
    rows = {float(e): state_shares(area_labels(scores, e, strict)) for e in etas}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("eta")


def tie_rule_shares(scores: Mapping[str, np.ndarray], eta: float = 0.5) -> pd.DataFrame:
    """Shares of the three areas under both tie rules: rows ``s ≥ η (code)`` and ``s > η (paper)``."""
    rows = {"s ≥ η (code)": state_shares(area_labels(scores, eta)),
            "s > η (paper)": state_shares(area_labels(scores, eta, strict=True))}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("rule")


def saturation(scores: Mapping[str, np.ndarray], values: Sequence[float] = (0.0, 0.5, 1.0),
               tol: float = 1e-6) -> pd.DataFrame:
    """Per modality (rows), the share of items whose score lies within ``tol`` of each of ``values`` (the
    points where the sigmoid consensus saturates or sits at 0.5 for items whose projections vanish)."""
    rows = {m: {f"share at {v:g}": float(np.mean(np.abs(np.asarray(s, float) - v) <= tol)) for v in values}
            for m, s in scores.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("modality")


def roc(scores: np.ndarray, corrupted: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC of "a low score flags a corrupted modality": (false-positive rates, true-positive rates, AUC).

    AUC 1 means every corrupted item scores below every clean one; 0.5 is chance."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y, s = np.asarray(corrupted, bool), -np.asarray(scores, float)
    if y.all() or not y.any():
        raise ValueError("ROC needs both corrupted and clean items")
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr, float(roc_auc_score(y, s))


def detection_table(scores: Mapping[str, np.ndarray], corrupted: Mapping[str, np.ndarray],
                    eta: float = 0.5) -> pd.DataFrame:
    """Per modality: AUC, and with "flagged" = score < η, the share of corrupted items flagged (recall) and
    the share of flagged items that are corrupted (precision)."""
    rows = {}
    for m, s in scores.items():
        y, flagged = np.asarray(corrupted[m], bool), np.asarray(s) < eta
        rows[m] = {"AUC": roc(s, y)[2], "corrupted items": int(y.sum()), "flagged at η": int(flagged.sum()),
                   "recall at η": float((flagged & y).sum() / max(y.sum(), 1)),
                   "precision at η": float((flagged & y).sum() / max(flagged.sum(), 1))}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("modality")


def corruption_masks(quality: pd.DataFrame, n_items: int) -> dict[str, np.ndarray]:
    """``{modality: bool (n_items,)}`` from a synthetic set's ``quality.csv`` table (see ``load_quality``)."""
    out = {}
    for m, g in quality.groupby("modality"):
        mask = np.zeros(n_items, bool)
        mask[g.item.to_numpy()] = g.corrupted.to_numpy(bool)
        out[str(m)] = mask
    return out


# ---- R2MR run artifacts ----------------------------------------------------------------------------------------

def scores_of(art: Mapping) -> dict[str, np.ndarray]:
    """``{modality: Reviewer scores (n_items,)}`` from an R2MR run's artifacts (or one of its views)."""
    s = np.asarray(art["scores"], dtype=float)  # (I, M)
    return {m: s[:, j] for j, m in enumerate(art["modalities"])}


def model_states(final: Mapping, best: Mapping | None = None) -> dict[str, Mapping]:
    """The Reviewer states an R2MR run saved, as artifact views (each usable with :func:`scores_of`):
    ``before first rewrite`` (``final["before_rewrite"]``, if a round ran), ``best valid`` (``best``, the
    run's ``artifacts_best.pt``) and ``after training`` (``final``)."""
    common = {k: final[k] for k in ("variant", "modalities", "eta") if k in final}
    out: dict[str, Mapping] = {}
    if final.get("before_rewrite"):
        out["before first rewrite"] = {**common, **final["before_rewrite"]}
    if best is not None:
        out["best valid"] = best
    out["after training"] = final
    return out


def detection_by_state(states: Mapping[str, Mapping], corrupted: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """ROC-AUC of "a low score flags the planted corruption" per model state (rows) and modality (columns),
    e.g. ``detection_by_state(model_states(final, best), corruption_masks(quality, n_items))``."""
    rows = {name: {m: roc(s, corrupted[m])[2] for m, s in scores_of(art).items()} for name, art in states.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model state")


def rounds_table(art: Mapping) -> pd.DataFrame:
    """One row per rewrite round: the epoch after which it ran, the shares of the quality states the round
    started from, and per direction the candidates, accepted rewrites and mean scores before and after."""
    rows = []
    for r in art.get("rewrite_rounds", []):
        n = {k: r.get(f"n_{k}", 0) for k in ("high", "disparity", "low")}
        total = max(sum(n.values()), 1)
        row = {"round": r["round"], "epoch": r["epoch"], **{f"share {k}": v / total for k, v in n.items()}}
        for d, st in r.get("directions", {}).items():
            row.update({f"{d} candidates": st["candidates"], f"{d} accepted": st["accepted"],
                        f"{d} score before": st["mean_score_before"], f"{d} score after": st["mean_score_after"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("round") if rows else pd.DataFrame()


def rewrite_totals(art: Mapping) -> dict[str, float]:
    """Totals over a run's rounds: rounds, candidates, accepted rewrites and items ever rewritten."""
    rounds = art.get("rewrite_rounds", [])
    cand = sum(st["candidates"] for r in rounds for st in r.get("directions", {}).values())
    acc = sum(st["accepted"] for r in rounds for st in r.get("directions", {}).values())
    ever = sum(int(np.asarray(v).sum()) for v in art.get("rewritten", {}).values())
    return {"rounds": len(rounds), "candidates": cand, "accepted": acc, "rows rewritten": ever}


def shares_table(views: Mapping[str, Mapping]) -> pd.DataFrame:
    """Per data set (R2MR artifacts): η, items, the shares of the three quality areas of the final scores, and
    how the disparity items split by which modality is the good one."""
    rows = {}
    for name, art in views.items():
        s = scores_of(art)
        eta = float(art["eta"])
        rows[name] = {"η": eta, "items": len(next(iter(s.values()))),
                      **state_shares(area_labels(s, eta)).to_dict(), **disparity_direction(s, eta).to_dict()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("data set")
