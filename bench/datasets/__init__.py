"""Datasets, registered by name. Importing this package registers every dataset."""

from bench.datasets import anomaly, folders, images, music, superres, toy  # noqa: F401
from bench.datasets.base import Dataset, DataSpec
from bench.registry import DATASETS

DATASETS.fallback = folders.find
DATASETS.fallback_hint = folders.hint

__all__ = ["DataSpec", "Dataset"]
