"""What a metric is to the harness."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.datasets.base import Dataset


class NotApplicable(Exception):
    """The metric cannot be computed here; the message says why (recorded, never replaced by a number)."""


@dataclass(frozen=True)
class Metric:
    """A named function of (real samples, generated samples, dataset) → float."""

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor, Dataset], float]
    higher_is_better: bool
    description: str
    tasks: tuple[str, ...] = ("generation",)  # the suite tasks it applies to (bench/tasks)

    def __call__(self, real: torch.Tensor, fake: torch.Tensor, dataset: Dataset) -> float:
        return float(self.fn(real, fake, dataset))
