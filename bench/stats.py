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


# --- Ranking and pairwise tests ------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """A two-sided Welch t-test of two groups' values over seeds.

    Welch's test (unequal variances) rather than a rank test: with 3 seeds per side the smallest
    p Mann-Whitney U can give is 0.1, so it could never find a difference at α = 0.05.
    """

    better: str  # the group with the better mean
    worse: str
    p_value: float  # NaN when either group has fewer than two finite values
    n: tuple[int, int]

    def statement(self, alpha: float = 0.05) -> str:
        n = f"n = {self.n[0]} vs {self.n[1]}"
        if math.isnan(self.p_value):
            return f"{self.better} vs {self.worse}: too few values to test ({n})"
        if self.p_value < alpha:
            return (f"{self.better} is better than {self.worse} "
                    f"(p = {self.p_value:.3g}, two-sided Welch t-test, {n})")  # fmt: skip
        return (f"{self.better} vs {self.worse}: no significant difference at α = {alpha} "
                f"(p = {self.p_value:.3g}, two-sided Welch t-test, {n})")  # fmt: skip


def rank(groups: dict[str, list[float]], higher_is_better: bool) -> list[tuple[str, Interval]]:
    """Groups ordered best mean first (groups without a finite value last), each with its interval."""
    cis = {name: mean_ci(values) for name, values in groups.items()}
    sign = -1.0 if higher_is_better else 1.0
    return sorted(cis.items(), key=lambda kv: (kv[1].n == 0, sign * kv[1].mean if kv[1].n else 0))


def pairwise(groups: dict[str, list[float]], higher_is_better: bool) -> list[Pair]:
    """Every pair of groups, in ranked order, tested with a two-sided Welch t-test."""
    order = [name for name, _ in rank(groups, higher_is_better)]
    pairs = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            va, vb = (np.asarray(groups[x], dtype=float) for x in (a, b))
            va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
            p = float("nan")
            if len(va) >= 2 and len(vb) >= 2:
                p = float(stats.ttest_ind(va, vb, equal_var=False).pvalue)
                p = 1.0 if math.isnan(p) else p  # both groups constant and equal: no difference
            pairs.append(Pair(a, b, p, (len(va), len(vb))))
    return pairs
