"""Names the command line offers, kept free of heavy imports: ``python -m r2mr --help`` must not import torch.

tests/test_cli.py checks these tuples against the real registries (``r2mr.models.MODELS``,
``r2mr.data.download.DATASETS``), so they cannot drift apart.
"""

from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = ("bpr", "lightgcn", "vbpr", "lattice", "freedom", "bm3", "mgcn", "r2mr")
DOWNLOADABLE: tuple[str, ...] = ("baby", "sports", "clothing")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N")  # cuda:N = the N-th CUDA device

# used by several layers, defined once:
AMAZON = DOWNLOADABLE  # the paper's sets
SYNTHETIC = "synthetic"
SEED_MAX = 2**32 - 1  # numpy's seed range
METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "precision", "map")
REPORTED_METRICS: tuple[str, ...] = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
PER_USER_METRICS: tuple[str, ...] = ("recall@20", "ndcg@20")  # kept per user
