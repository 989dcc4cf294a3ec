"""The summary section of an ablation (`report.ablation`): entries in order, each adding one
ingredient to the one before it, tested step by step on the suite's first metric beside the
published values, and, when the suite measures path lengths, each entry's ppl columns."""

from __future__ import annotations

import math

import pandas as pd

from bench.metrics import column_direction, metric_columns
from bench.stats import mean_ci, pairwise

ALPHA = 0.05


def section(cfg: dict, final: pd.DataFrame) -> list[str]:
    """Markdown lines of the ablation section, from the final rows of every cell."""
    report = cfg.get("report", {})
    labels = report.get("ablation") or []
    ok = final[(final["status"] == "ok") & final["variant"].astype(str).isin(labels)]
    if len(labels) < 2 or ok.empty:
        return []
    published = report.get("ablation_reference") or []
    source = report.get("ablation_reference_source") or "published"
    lines = ["## Ablation, step by step", "",
             f"Entries in order, each adding one ingredient to the one before it: "
             f"{' → '.join(f'`{x}`' for x in labels)}. Each step is tested against the step "
             f"before it with a two-sided Welch t-test over seeds (α = {ALPHA}). A step's change "
             "*held* when it goes the way the published one went and the test rejects equality.",
             ""]  # fmt: skip
    for dataset, group in ok.groupby("dataset", sort=False, observed=True):
        columns = [c for c in metric_columns(cfg["metrics"], group.columns)
                   if group[c].notna().any() and column_direction(c) is not None]  # fmt: skip
        if not columns:
            continue
        primary = columns[0]
        # Entries trained on this dataset; where some are missing, each step spans several
        # ingredients and no longer matches a published step.
        present = [x for x in labels if (group["variant"] == x).any()]
        if len(present) < 2:
            continue
        values = {x: group.loc[group["variant"] == x, primary].dropna().tolist() for x in present}
        lines += [f"### {dataset}: `{primary}`", ""]
        if present != labels:
            lines += [f"Only {', '.join(f'`{x}`' for x in present)} train on {dataset}, so the "
                      "published steps do not apply here.", ""]  # fmt: skip
        lines += _steps(present, values, published if present == labels else [], source,
                        bool(column_direction(primary)))  # fmt: skip
        paths = [c for c in columns if c.split("/")[0] in ("ppl_z", "ppl_w")]
        if paths:
            recall = next((c for c in columns if c.startswith("recall/")), None)
            lines += _paths(present, group, paths, recall)
    return lines


def _steps(
    labels: list[str], values: dict[str, list[float]], published: list[float], source: str,
    higher: bool,
) -> list[str]:  # fmt: skip
    head = "| entry | here (mean ± 95% CI) | change from the step before | Welch p |"
    rule = "|---|---|---|---|"
    if published:
        head += f" {source} | its change | held here? |"
        rule += "---|---|---|"
    lines = [head, rule]
    verdicts: list[str] = []
    for i, label in enumerate(labels):
        ci = mean_ci(values[label])
        cells = [f"`{label}`", ci.format()]
        if i == 0:
            cells += ["", ""]
        else:
            before = mean_ci(values[labels[i - 1]])
            change = ci.mean - before.mean if ci.n and before.n else math.nan
            test = pairwise({label: values[label], labels[i - 1]: values[labels[i - 1]]}, higher)
            p = test[0].p_value if test else math.nan
            cells += [f"{change:+.3g}", f"{p:.3g}"]
        if published:
            cells.append(f"{published[i]:g}")
            if i == 0:
                cells += ["", ""]
            else:
                paper_change = published[i] - published[i - 1]
                verdict = _verdict(change, p, paper_change, higher)
                verdicts.append(f"`{labels[i - 1]}` → `{label}`: {verdict}")
                cells += [f"{paper_change:+.3g}", verdict]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if verdicts:
        improved = [v for v in verdicts if "published: better" in v]
        held = [v for v in improved if v.endswith("held")]
        lines += [f"Of the {len(improved)} steps that improved the published value, "
                  f"{len(held)} improved it here significantly; step by step:", "",
                  *(f"- {v}" for v in verdicts), ""]  # fmt: skip
    return lines


def _verdict(change: float, p: float, paper_change: float, higher: bool) -> str:
    """Whether a step's change here went the published way (better or worse) and is significant."""
    if math.isnan(change):
        return "not measured"
    better_here = change > 0 if higher else change < 0
    if paper_change == 0:
        return "published: no change; " + ("differs here" if p < ALPHA else "no change here")
    better_there = paper_change > 0 if higher else paper_change < 0
    word = "better" if better_there else "worse"
    if math.isnan(p):
        return f"published: {word}; too few seeds to test"
    if p >= ALPHA:
        return f"published: {word}; no significant change here"
    return f"published: {word}; " + ("held" if better_here == better_there else "reversed here")


def _paths(
    labels: list[str], group: pd.DataFrame, paths: list[str], recall: str | None
) -> list[str]:
    shown = paths + ([recall] if recall else [])
    lines = ["Perceptual path lengths (lower: a smoother latent space; empty where an entry has "
             "no such space, e.g. no W without a mapping network)"
             + (", beside recall: a generator whose outputs barely vary (recall near 0) has short "
                "paths because it has collapsed, not because its latent space is smooth" if recall
                else "") + ":", "",
             "| entry | " + " | ".join(f"`{c}`" for c in shown) + " |",
             "|---|" + "---|" * len(shown)]  # fmt: skip
    for label in labels:
        rows = group[group["variant"] == label]
        lines.append(
            f"| `{label}` | " + " | ".join(mean_ci(rows[c]).format() for c in shown) + " |"
        )
    z = next((c for c in paths if c.startswith("ppl_z/")), None)
    w = next((c for c in paths if c.startswith("ppl_w/")), None)
    first, last = labels[0], labels[-1]
    if z and w:
        a = group.loc[group["variant"] == first, z].dropna().tolist()
        b = group.loc[group["variant"] == last, w].dropna().tolist()
        if a and b:
            test = pairwise({f"{first} in Z": a, f"{last} in W": b}, higher_is_better=False)[0]
            lines += ["", f"The paper's Table 3 comparison (a traditional generator in Z, 412.0, "
                      f"against the style-based one with mixing in W, 234.0, in LPIPS/VGG16 units "
                      f"that these columns do not share): `{first}` in Z "
                      f"{mean_ci(a).format()} vs `{last}` in W {mean_ci(b).format()}; "
                      f"{test.statement(ALPHA)}."]  # fmt: skip
    return lines + [""]
