"""The summary section of a music suite, in the shape of MuseGAN's Tables 1 and 2 (Dong et al., AAAI
2018): intra-track EB, UPC, QN per track and inter-track TD per pair, with rows for the training data
and held-out chorales; the distance of each model's metrics to the training data's, ranked and tested
pairwise; the paper's TD finding tested; cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.datasets.music import TRACKS
from bench.metrics.music import columns_of
from bench.stats import mean_ci, pairwise, rank

TABLES = (("eb", "EB, empty bars (%)"), ("upc", "UPC, pitch classes used per non-empty bar"),
          ("qn", "QN, qualified notes (%)"), ("td", "TD, tonal distance between tracks"))  # fmt: skip
# Dong et al. 2018 compare the models with shared inter-track latents against jamming in Table 2.
SHARED = ("composer", "hybrid")


def section(cfg: dict, final: pd.DataFrame, run_dir: Path) -> list[str]:
    """Markdown lines of the music section, from the final rows of every cell."""
    ok = final[final["status"] == "ok"]
    if ok.empty:
        return []
    variants = list(dict.fromkeys(ok["variant"]))
    data_rows, described = _data_rows(run_dir)
    min_steps = cfg["eval"]["qn_min_steps"]
    lines = ["## Music metrics (the shape of MuseGAN's Tables 1 and 2)", ""]
    if described:
        lines += [f"Data: {described}", ""]
    lines += [f"Generated phrases are binarised by `{cfg['eval']['binarize']}` and measured beside "
              f"{_phrases(data_rows)} training phrases (the same for every cell) and the held-out "
              "chorales' phrases. Model rows: mean over seeds at the final step with 95% "
              f"t-intervals. QN counts notes of at least {min_steps} steps "
              f"({_note_value(min_steps, 16)} at 16 steps per bar; the paper's 3 of 96 per bar, "
              "a 32nd note, would pass every note of this grid). UPC and TD are best near the data's "
              "values, not at either end. DP (drum patterns) does not apply: the chorales have no "
              "drum track.", ""]  # fmt: skip
    for prefix, title in TABLES:
        columns = [c for c in columns_of(prefix, TRACKS) if c in ok and ok[c].notna().any()]
        if columns:
            lines += _table(title, columns, ok, variants, data_rows)
    lines += _distance(ok, variants, data_rows)
    lines += _td_finding(cfg, ok, variants)
    return lines + _cost(ok, variants)


def _data_rows(run_dir: Path) -> tuple[dict[str, dict], str]:
    """The training-data and held-out rows of the first cell that saved them, and the data's
    description (every cell measures the same fixed phrases)."""
    for path in sorted((run_dir / "cells").glob("*/music_reference.json")):
        saved = json.loads(path.read_text())
        return saved["rows"], saved["dataset"]
    return {}, ""


def _phrases(data_rows: dict) -> str:
    return str(data_rows.get("training data", {}).get("phrases", "the"))


def _note_value(steps: int, per_bar: int) -> str:
    names = {1: "a sixteenth note", 2: "an eighth note", 3: "a dotted eighth", 4: "a quarter note"}
    return names.get(steps * 16 // per_bar, f"{steps} sixteenths")


def _table(title: str, columns: list[str], ok: pd.DataFrame, variants: list[str],
           data_rows: dict) -> list[str]:  # fmt: skip
    heads = [c.split("/", 1)[1] for c in columns]
    lines = [f"### {title}", "", "| | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for name, row in data_rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    for v in variants:
        rows = ok[ok["variant"] == v]
        lines.append(f"| `{v}` | " + " | ".join(mean_ci(rows[c]).format() for c in columns) + " |")
    return [*lines, ""]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3g}"


def _distance(ok: pd.DataFrame, variants: list[str], data_rows: dict) -> list[str]:
    """The distance-to-data score per variant, ranked, and every pair tested on it."""
    if "data_distance" not in ok or ok["data_distance"].isna().all():
        return []
    columns = [c for c in columns_of("data_distance", TRACKS) if c in ok]
    held = data_rows.get("held-out chorales", {})
    lines = ["### Distance to the training data", "",
             "Mean Kolmogorov-Smirnov statistic between each model's per-phrase EB, UPC, QN and TD "
             "values and the training phrases' (0 = indistinguishable, 1 = disjoint), and per metric "
             "(`ks/*`). Held-out chorales are real Bach the models never saw: their distance is "
             "what sampling noise alone gives.", "",
             "| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]  # fmt: skip
    if held:
        lines.append(
            "| held-out chorales | " + " | ".join(_fmt(held.get(c)) for c in columns) + " |"
        )
    for v in variants:
        rows = ok[ok["variant"] == v]
        lines.append(f"| `{v}` | " + " | ".join(mean_ci(rows[c]).format() for c in columns) + " |")
    values = {v: ok.loc[ok["variant"] == v, "data_distance"].dropna().tolist() for v in variants}
    ranked = " > ".join(f"`{v}` {ci.format()}" for v, ci in rank(values, False))
    lines += ["", f"Closest to the data first: {ranked}.", ""]
    measured = {v: x for v, x in values.items() if mean_ci(x).n}
    lines += [f"- {pair.statement()}" for pair in pairwise(measured, False)]
    return [*lines, ""]


def mean_td(ok: pd.DataFrame) -> pd.Series:
    """Each cell's TD averaged over its track pairs."""
    columns = [c for c in ok.columns if c.startswith("td/")]
    return ok[columns].mean(axis=1, skipna=False)


def _td_finding(cfg: dict, ok: pd.DataFrame, variants: list[str]) -> list[str]:
    """Dong et al. report lower inter-track TD for shared latents (composer, hybrid) than for
    jamming (Table 2); tested here on each cell's TD averaged over pairs."""
    labels = {v: cfg["variants"].get(v, {}).get("sharing") for v in variants}
    jamming = [v for v, s in labels.items() if s == "jamming"]
    shared = [v for v, s in labels.items() if s in SHARED]
    if not jamming or not shared or not any(c.startswith("td/") for c in ok.columns):
        return []
    td = mean_td(ok)
    values = {v: td[ok["variant"] == v].dropna().tolist() for v in variants}
    lines = ["### The paper's finding: shared latents make tracks more harmonically related", "",
             "Dong et al. (Table 2) report lower TD between tracks for the composer and hybrid "
             "models, whose tracks share latents, than for jamming, whose tracks are generated "
             "independently. TD averaged over the six track pairs, per cell:", ""]  # fmt: skip
    for v in shared:
        for j in jamming:
            pair = pairwise({v: values[v], j: values[j]}, False)[0]
            a, b = mean_ci(values[v]), mean_ci(values[j])
            if np.isnan(pair.p_value):
                verdict = "could not be tested here (too few seeds)"
            elif pair.p_value >= 0.05:
                verdict = "did not hold here (no significant difference)"
            else:
                verdict = "held here" if pair.better == v else "was reversed here"
            lines.append(f"- `{v}` {a.format()} vs `{j}` {b.format()}: {pair.statement()}; the "
                         f"finding {verdict}.")  # fmt: skip
    return [*lines, ""]


def _cost(ok: pd.DataFrame, variants: list[str]) -> list[str]:
    cols = [c for c in ["train_seconds", "sample_s_per_phrase"] if c in ok]
    lines = ["### Cost", "", "Means over seeds: seconds of training per cell, and seconds to "
             "generate one phrase.", "",
             "| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]  # fmt: skip
    for v in variants:
        rows = ok[ok["variant"] == v]
        lines.append(f"| `{v}` | " + " | ".join(mean_ci(rows[c]).format() for c in cols) + " |")
    return [*lines, ""]
