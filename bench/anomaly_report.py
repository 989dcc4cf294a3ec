"""The summary section of an anomaly-detection suite: each metric per normal class, the mean over
classes with pairwise tests, the hardest classes, the published AnoGAN column, and scoring cost."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench.stats import mean_ci, pairwise, rank

# AnoGAN's AUROC (%) on MNIST under the one-class protocol, normal digit 0-9, as reported by Ruff et
# al., "Deep One-Class Classification", ICML 2018, Table 1 (full MNIST; neither AnoGAN paper has an
# MNIST table). A published reference to compare the ordering of digits with, not a result here.
RUFF_ANOGAN_AUROC = (96.6, 99.2, 85.0, 88.7, 89.4, 88.3, 94.7, 93.5, 84.9, 92.4)
NAME = re.compile(r"^(?P<source>.+)_(?P<protocol>one_class|leave_one_out)_(?P<digit>\d+)$")


def section(cfg: dict, final: pd.DataFrame) -> list[str]:
    """Markdown lines of the anomaly section, from the final rows of every cell."""
    ok = final[final["status"] == "ok"].copy()
    if ok.empty:
        return []
    parsed = ok["dataset"].astype(str).str.extract(NAME)
    if parsed["digit"].isna().any():
        return []
    ok["protocol"], ok["digit"] = parsed["protocol"], parsed["digit"].astype(int)
    ok["source"] = parsed["source"]
    variants = list(dict.fromkeys(ok["variant"]))
    metrics = [m for m in cfg["metrics"] if m in ok and ok[m].notna().any()]
    lines: list[str] = []
    for (source, protocol), rows in ok.groupby(["source", "protocol"], sort=False):
        what = ("the normal digit; the other nine are anomalies" if protocol == "one_class"
                else "the anomalous digit; the other nine are normal")  # fmt: skip
        lines += [f"## Anomaly detection on {source}, protocol `{protocol}`", "",
                  f"Each row is one dataset: its digit is {what}. Values are means over seeds at "
                  "the final step with 95% t-intervals; higher is better for every column.", ""]  # fmt: skip
        published = source == "mnist5k" and protocol == "one_class" and "auroc" in metrics
        for metric in metrics:
            lines += _per_digit(rows, metric, variants, published and metric == "auroc")
            lines += _mean_over_digits(rows, metric, variants)
        if "auroc" in metrics:
            lines += _hardest(rows, variants)
            if published:
                lines += _against_published(rows, variants)
    return lines + _cost(ok, variants)


def _per_digit(rows: pd.DataFrame, metric: str, variants: list[str], published: bool) -> list[str]:
    head = ["digit", *(f"`{v}`" for v in variants)] + (["AnoGAN, Ruff et al. 2018"] * published)
    lines = [f"### {metric} per digit", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]  # fmt: skip
    for digit, group in rows.groupby("digit"):
        cells = [mean_ci(group.loc[group["variant"] == v, metric]).format() for v in variants]
        if published:
            cells.append(f"{RUFF_ANOGAN_AUROC[digit] / 100:.3f}")
        lines.append(f"| {digit} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _seed_means(rows: pd.DataFrame, metric: str, variants: list[str]) -> dict[str, list[float]]:
    """Per variant, its mean over digits within each seed that scored every digit of the table."""
    digits = rows["digit"].nunique()
    out: dict[str, list[float]] = {}
    for v in variants:
        per_seed = rows[rows["variant"] == v].groupby("seed")[metric]
        out[v] = [float(s.mean()) for _, s in per_seed if s.notna().sum() == digits]
    return out


def _mean_over_digits(rows: pd.DataFrame, metric: str, variants: list[str]) -> list[str]:
    values = _seed_means(rows, metric, variants)
    ranked = " > ".join(f"`{v}` {ci.format()}" for v, ci in rank(values, True))
    digits = rows["digit"].nunique()
    lines = [f"Mean {metric} over the {digits} digit{'s' * (digits > 1)} (one value per seed, then "
             f"the interval over seeds): {ranked}.", ""]  # fmt: skip
    measured = {v: x for v, x in values.items() if mean_ci(x).n}
    lines += [f"- {pair.statement()}" for pair in pairwise(measured, True)]
    return [*lines, ""] if len(measured) > 1 else lines


def _hardest(rows: pd.DataFrame, variants: list[str]) -> list[str]:
    """Digits ordered by AUROC, per variant and over all variants."""
    means = rows.groupby(["variant", "digit"], observed=True)["auroc"].mean().unstack("digit")
    lines = ["Digits from hardest to easiest (mean AUROC over seeds):", ""]
    for v in variants:
        if v in means.index:
            order = means.loc[v].dropna().sort_values()
            lines.append(f"- `{v}`: " + ", ".join(f"{d} ({a:.3f})" for d, a in order.items()))
    overall = means.mean().dropna().sort_values()
    lines.append("- all variants averaged: " + ", ".join(f"{d} ({a:.3f})" for d, a in
                                                         overall.items()))  # fmt: skip
    return [*lines, ""]


def _against_published(rows: pd.DataFrame, variants: list[str]) -> list[str]:
    """Spearman's rank correlation of each variant's per-digit AUROC with the published column."""
    means = rows.groupby(["variant", "digit"], observed=True)["auroc"].mean().unstack("digit")
    lines = ["Does the ordering of digits resemble the published AnoGAN column (Ruff et al. 2018, "
             "Table 1, full MNIST)? Spearman's rank correlation over the digits scored here:", ""]  # fmt: skip
    for v in variants:
        if v not in means.index:
            continue
        ours = means.loc[v].dropna()
        if len(ours) < 3:
            lines.append(f"- `{v}`: too few digits to correlate ({len(ours)})")
            continue
        theirs = np.array([RUFF_ANOGAN_AUROC[d] for d in ours.index])
        rho, p = scipy_stats.spearmanr(ours.to_numpy(), theirs)
        verdict = ("resembles it" if p < 0.05 and rho > 0 else
                   "no significant resemblance")  # fmt: skip
        lines.append(f"- `{v}`: ρ = {rho:.2f} (p = {p:.3g}, {len(ours)} digits): {verdict}")
    return [*lines, ""]


def _cost(ok: pd.DataFrame, variants: list[str]) -> list[str]:
    """What scoring one test image and training one cell cost each variant."""
    cols = [c for c in ["score_s_per_image", "train_seconds"] if c in ok]
    lines = ["### Cost of scoring and training", "",
             "Means over every digit and seed: seconds to score one test image (AnoGAN searches a "
             "latent per image) and seconds of training per cell.", "",
             "| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]  # fmt: skip
    for v in variants:
        rows = ok[ok["variant"] == v]
        lines.append(f"| `{v}` | " + " | ".join(mean_ci(rows[c]).format() for c in cols) + " |")
    return [*lines, ""]
