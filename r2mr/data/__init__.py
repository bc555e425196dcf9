"""Data layer: MMRec loader and checks, statistics, the embedded synthetic set, downloads."""

from .mmrec import Dataset, Split, check_dataset, feature_files, load_dataset
from .stats import format_log, statistics

__all__ = ["Dataset", "Split", "check_dataset", "feature_files", "load_dataset", "format_log", "statistics"]
