"""Summaries over seeds: mean and a 95% Student-t confidence interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    mean: float
    half_width: float  # NaN when fewer than two finite values
    n: int

    def format(self, digits: int = 3) -> str:
        if self.n == 0:
            return "n/a"
        if math.isnan(self.half_width):
            return f"{self.mean:.{digits}g} (n={self.n}, no interval)"
        return f"{self.mean:.{digits}g} ± {self.half_width:.2g} (n={self.n})"


def mean_ci(values: list[float] | np.ndarray, level: float = 0.95) -> Interval:
    """Mean and half-width of the `level` t-interval of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return Interval(float("nan"), float("nan"), 0)
    if len(v) == 1:
        return Interval(float(v[0]), float("nan"), 1)
    sem = float(v.std(ddof=1)) / math.sqrt(len(v))
    return Interval(float(v.mean()), float(stats.t.ppf(0.5 + level / 2, len(v) - 1)) * sem, len(v))
