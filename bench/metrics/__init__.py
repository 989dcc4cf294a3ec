"""Evaluation metrics, registered by name. Importing this package registers every metric."""

from bench.metrics import toy  # noqa: F401
from bench.metrics.base import Metric, NotApplicable

__all__ = ["Metric", "NotApplicable"]
