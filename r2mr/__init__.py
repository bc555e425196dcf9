"""r2mr: a reproducibility package for R2MR (Review and Rewrite Modality for Recommendation, KDD 2025).

Layers, bottom to top (each imports only those below it; ``tests/test_layers.py`` keeps it so):
core -> data -> {models, evaluation} -> training -> runs -> {report, cli}.

The public API is this module: :func:`train` and :func:`load_dataset` take the command line's names
(``epochs=`` is ``--epochs``, ``overrides=`` the ``key=value`` arguments), and ``r2mr.models.register`` adds a
model of your own (docs/extending.md). Importing the package does no work (and does not import torch);
``python -m r2mr`` (:mod:`r2mr.cli.main`) is the only place that parses arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core import __version__ as __version__

if TYPE_CHECKING:
    from .data import Dataset

__all__ = ["__version__", "load_dataset", "train"]


def train(model: str, dataset: str | Dataset, *, epochs: int | None = None,
          overrides: Mapping[str, Any] | Sequence[str] | None = None, seed: int | None = None,
          device: str = "auto", data_dir: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` as ``python -m r2mr train`` does, through the result store (a stored run is
    read back, a killed one resumes); returns the result record (metrics at the best-valid epoch, history).

    ``overrides``: ``{"lr": 0.01}`` or ``["lr=0.01"]``; ``dataset``: a name under the data root, ``DIR/NAME``,
    or a :class:`r2mr.data.Dataset`. ``options`` go to :func:`r2mr.runs.experiment.train` (``run_dir``,
    ``resume``, ``reuse``, ``progress``, ``strict``).
    """
    from .core.config import parse_overrides
    from .runs.experiment import train as train_run

    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = parse_overrides(list(overrides))
    return train_run(model, dataset, data_dir=data_dir, overrides=dict(overrides or {}), device=device, seed=seed,
                     max_epochs=epochs, **options)


def load_dataset(name: str, data_dir: str | Path | None = None, *, features: bool = True) -> Dataset:
    """Load and check the MMRec-format data set ``name`` under the data root (``data_dir``, else
    ``$R2MR_DATA_DIR``, else ``data/``), as ``python -m r2mr data check NAME`` reads it."""
    from .core.paths import data_root, data_root_source
    from .data import load_dataset as load

    return load(name, data_root(data_dir), features=features, root_source=data_root_source(data_dir))
