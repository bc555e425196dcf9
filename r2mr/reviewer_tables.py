"""Notebook 01's Reviewer tables read from the right model state: before the first rewrite round, at the
best-validation checkpoint (the model the reported metrics come from) and after the last epoch (labelled).

Each state is an artifact view (:func:`r2mr.analysis.model_states`); every table has a ``model state``
column so a reader never mixes them up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from . import analysis
from .runs import Run, artifacts

BEST = "best valid"


def states_of(run: Run) -> dict[str, Mapping[str, Any]]:
    """The saved Reviewer states of one finished R2MR run (``before first rewrite`` if a round ran,
    ``best valid`` if the run saved ``artifacts_best``, and ``after training``)."""
    from .results import load_torch, result_path

    best_path = result_path(run.result, "artifacts_best")
    best = load_torch(best_path) if best_path is not None and best_path.is_file() else None
    return analysis.model_states(artifacts(run), best)


def shares_by_state(states: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Per data set, model state and tie rule (s ≥ η as in the code, s > η as in the paper): the shares of
    the three quality areas. ``states``: ``{data set: {state: artifact view}}``."""
    parts = {(ds, name): analysis.tie_rule_shares(analysis.scores_of(view), float(view["eta"]))
             for ds, by_state in states.items() for name, view in by_state.items()}
    return pd.concat(parts, names=["data set", "model state"]) if parts else pd.DataFrame()


def saturation_by_state(states: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Per data set, model state and modality: the share of scores at 0, 0.5 and 1 (where the sigmoid
    consensus saturates), which is why the tie rule matters."""
    parts = {(ds, name): analysis.saturation(analysis.scores_of(view))
             for ds, by_state in states.items() for name, view in by_state.items()}
    return pd.concat(parts, names=["data set", "model state"]) if parts else pd.DataFrame()


def detection_by_features(by_features: Mapping[str, Mapping[str, Mapping[str, Any]]],
                          corrupted: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """ROC-AUC of the planted corruption per modality (columns), for each feature treatment (``trained``:
    R2MR's default, the feature tables learn; ``frozen``: the ``content=frozen`` control) and model state."""
    parts = {name: analysis.detection_by_state(states, corrupted) for name, states in by_features.items() if states}
    return pd.concat(parts, names=["feature tables"]) if parts else pd.DataFrame()
