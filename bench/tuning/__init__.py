"""Hyperparameter tuning of a suite's variant entries with Optuna (`bench tune`)."""
