"""r2mr: a reproducibility package for R2MR (Review and Rewrite Modality for Recommendation, KDD 2025).

Pipeline, one module each:  data -> models -> train -> evaluate -> results.
Importing the package does no work (and does not import torch); ``python -m r2mr`` (:mod:`r2mr.cli.main`) is the only
place that parses arguments.
"""

__version__ = "0.1.0"  # the package version: pyproject.toml reads it from here
