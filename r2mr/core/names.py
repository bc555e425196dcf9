"""Names and ranges defined once, kept free of heavy imports (``python -m r2mr --help`` must not import torch).

tests/test_cli.py checks the model and data set tuples against the real registries (``r2mr.models.MODELS``,
``r2mr.data.download.DATASETS``), so they cannot drift apart.
"""

from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = ("bpr", "lightgcn", "vbpr", "lattice", "freedom", "bm3", "mgcn", "r2mr")
AMAZON: tuple[str, ...] = ("baby", "sports", "clothing")  # the paper's sets: downloadable, always in the main table
DOWNLOADABLE: tuple[str, ...] = AMAZON
SYNTHETIC = "synthetic"  # the embedded, generated data set
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N")  # cuda:N = the N-th CUDA device
SEED_MAX = 2**32 - 1  # numpy's seed range: a seed is an integer 0 ... SEED_MAX

METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "precision", "map")  # evaluated at every cut-off K
REPORTED_METRICS: tuple[str, ...] = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")  # the paper's tables
PER_USER_METRICS: tuple[str, ...] = ("recall@20", "ndcg@20")  # kept per user for the significance tests
