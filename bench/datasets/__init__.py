"""Datasets, registered by name. Importing this package registers every dataset."""

from bench.datasets import images, toy  # noqa: F401
from bench.datasets.base import Dataset, DataSpec

__all__ = ["DataSpec", "Dataset"]
