"""Model-selection rules applied to a per-epoch history (each entry has ``valid`` and ``test`` dicts).

* ``by_valid``: MMRec's standard protocol: the epoch with the best validation metric (strictly better
  values only, so the earliest of equal maxima wins); stop once ``patience`` + 1 consecutive epochs fail
  to improve it.
* ``official_test_rule``: the rule of the authors' R2MR trainer (spec section 9.3): the running maximum
  of each *test* metric (R@10, R@20, N@10, N@20) is kept; the selected epoch is the last one at which any
  of them improved; a counter, visited over the four metrics in order, resets on an improvement and adds
  one otherwise; training stops once it exceeds ``stopping_step`` (40) after an epoch. Values are rounded
  to 4 decimals first, as the official metrics are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.names import REPORTED_METRICS

OFFICIAL_METRICS = REPORTED_METRICS  # the official log prints these


@dataclass
class Selection:
    best_epoch: int  # selected epoch (index into the history), -1 if none
    stop_epoch: int | None  # epoch after which the rule stops training, None if it never stops


def by_valid(history: Sequence[dict], metric: str = "recall@20", patience: int = 20) -> Selection:
    best, best_epoch, stop = float("-inf"), -1, None
    for epoch, h in enumerate(history):
        value = h["valid"][metric]
        if value > best:
            best, best_epoch = value, epoch
        elif epoch - best_epoch > patience:
            stop = epoch
            break
    return Selection(best_epoch, stop)


def official_test_rule(history: Sequence[dict], stopping_step: int = 40,
                       metrics: Sequence[str] = OFFICIAL_METRICS, decimals: int = 4) -> Selection:
    maxima = {m: float("-inf") for m in metrics}
    counter, selected, stop = 0, -1, None
    for epoch, h in enumerate(history):
        improved = False
        for m in metrics:
            value = round(h["test"][m], decimals)
            if value > maxima[m]:
                maxima[m], counter, improved = value, 0, True
            else:
                counter += 1
        if improved:
            selected = epoch
        if counter > stopping_step:
            stop = epoch
            break
    return Selection(selected, stop)
