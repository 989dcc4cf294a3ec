"""Claims a suite declares ("dcgan's FID is below gan's"), tested on a run's final-step values."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from bench.config import Claim
from bench.results import final_values
from bench.stats import Interval, mean_ci


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    dataset: str
    holds: bool | None  # None: it could not be tested (the reason says why)
    variant: Interval
    than: Interval | None  # None when `than` is a number
    p_value: float
    reason: str = ""

    def statement(self) -> str:
        c = self.claim
        other = f"`{c.than}` {self.than.format()}" if self.than else f"{c.than}"
        values = f"`{c.variant}` {self.variant.format()} {c.op} {other} on `{self.dataset}`"
        if self.holds is None:
            return f"cannot be tested: {self.reason} ({values})"
        test = "one-sided Welch t-test" if self.than else "one-sided one-sample t-test"
        p = "p ≈ 0 (no spread)" if self.p_value == 0 else f"p = {self.p_value:.3g}"
        verdict = "holds" if self.holds else "does NOT hold"
        return f"{verdict}: {values}; {p} ({test}, α = {c.alpha})"


def check(claim: Claim, final: pd.DataFrame, default_dataset: str) -> ClaimResult:
    """Test one claim on final-step rows (one per variant, dataset and seed) of cells that ended ok."""
    dataset = claim.dataset or default_dataset
    a = final_values(final, claim.variant, dataset, claim.metric)
    b = None  # against a number
    if isinstance(claim.than, str):
        b = final_values(final, claim.than, dataset, claim.metric)
    result = ClaimResult(claim, dataset, None, mean_ci(a), mean_ci(b) if b is not None else None,
                         float("nan"))  # fmt: skip
    short = [
        label for label, v in ((claim.variant, a), (claim.than, b)) if v is not None and len(v) < 2
    ]
    if claim.metric not in final:
        return replace(result, reason=f"no column '{claim.metric}' in the results")
    if short:
        return replace(
            result,
            reason=f"fewer than two finished seeds with a value for {', '.join(map(str, short))}",
        )

    alternative = "less" if claim.op == "<" else "greater"
    other = b if b is not None else np.array([float(claim.than)])
    if np.ptp(a) == 0 and np.ptp(other) == 0:  # every seed gave the same value: the order is exact
        ordered = a[0] < other[0] if claim.op == "<" else a[0] > other[0]
        p = 0.0 if ordered else 1.0
    elif b is None:
        p = float(stats.ttest_1samp(a, float(claim.than), alternative=alternative).pvalue)
    else:
        p = float(stats.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue)
    return replace(result, holds=bool(p < claim.alpha), p_value=p)


def check_all(claims: list[Claim], final: pd.DataFrame, default_dataset: str) -> list[ClaimResult]:
    return [check(c, final, default_dataset) for c in claims]
