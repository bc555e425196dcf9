"""Evaluation layer: the full-ranking evaluator and the epoch-selection rules."""
