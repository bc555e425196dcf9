"""Model registry: one file per model, registered here by name; :func:`register` adds a model of your own.

A registered model is what ``r2mr.train``, the run plan (``models=``) and the tables see; the command line's
``--model`` choices are the built-in names (:data:`r2mr.core.names.MODEL_NAMES`, kept light for ``--help``).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Callable, TypeVar

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


M = TypeVar("M", bound=type[Recommender])


def register(name: str | None = None) -> Callable[[M], M]:
    """Class decorator: register a :class:`Recommender` subclass as ``name`` (default: its class name, lower
    case). It needs a ``Config`` dataclass; a name already taken by another class is an error."""
    def add(cls: M) -> M:
        key = (name or cls.__name__).lower()
        if not (isinstance(cls, type) and issubclass(cls, Recommender)):
            raise ConfigError(f"register('{key}'): {cls!r} is not a Recommender subclass; fix: derive it from "
                              f"r2mr.models.base.Recommender")
        if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
            raise ConfigError(f"register('{key}'): {cls.__name__}.Config is not a dataclass; fix: set Config to a "
                              f"@dataclass of the model's hyper-parameters")
        if MODELS.get(key, cls) is not cls:
            raise ConfigError(f"register('{key}'): the name is taken by {MODELS[key].__name__}; fix: choose another")
        MODELS[key] = cls
        return cls
    return add


def get_model(name: str) -> type[Recommender]:
    """The model class registered as ``name``; an unknown name is an error listing the valid ones."""
    try:
        return MODELS[name.lower()]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), MODELS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown model '{name}'{hint}; fix: choose one of {', '.join(MODELS)}") from None
