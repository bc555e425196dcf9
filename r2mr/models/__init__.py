"""Model registry: one file per model, registered here by name."""

from __future__ import annotations

import difflib

from ..core.errors import ConfigError
from .base import Recommender
from .bm3 import BM3
from .bpr import BPR
from .freedom import FREEDOM
from .lattice import LATTICE
from .lightgcn import LightGCN
from .mgcn import MGCN
from .r2mr.model import R2MR
from .vbpr import VBPR

MODELS: dict[str, type[Recommender]] = {
    "bpr": BPR,
    "lightgcn": LightGCN,
    "vbpr": VBPR,
    "lattice": LATTICE,
    "freedom": FREEDOM,
    "bm3": BM3,
    "mgcn": MGCN,
    "r2mr": R2MR,
}


def get_model(name: str) -> type[Recommender]:
    """The model class registered as ``name``; an unknown name is an error listing the valid ones."""
    try:
        return MODELS[name.lower()]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), MODELS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown model '{name}'{hint}; fix: choose one of {', '.join(MODELS)}") from None
