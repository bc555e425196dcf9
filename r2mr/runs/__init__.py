"""Runs layer: the result store, experiments, the run plan and its specs, tuning and executors."""
