"""The results table of a run folder: one row per (variant, dataset, seed, evaluation step)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.io import atomic_write_bytes

KEY_COLUMNS = ["variant", "dataset", "seed", "step"]
BASE_COLUMNS = [*KEY_COLUMNS, "images_seen", "train_seconds", "status"]
TRAILING_COLUMNS = [
    "time",
    "note",
]  # when the row was made; why a value is missing or a cell stopped
# Columns every cell logs besides its metrics: training diagnostics, and speed and memory.
DIAGNOSTIC_COLUMNS = [
    "critic_loss",
    "wasserstein_estimate",
    "clip_saturation",
    "act_grad_log10_slope",
]
# `sample_s_per_image`: seconds to generate one evaluation sample (autoregressive models draw pixel
# by pixel), a column of the generation task; `score_s_per_image`: seconds to score one test image
# (AnoGAN searches a latent per image), a column of the anomaly task.
PERFORMANCE_COLUMNS = [
    "img_per_s", "gen_steps_per_s", "eval_seconds", "sample_s_per_image", "score_s_per_image",
    "peak_mem_mb",
]  # fmt: skip
# Columns that measure time or memory, and so differ between any two runs of the same cells.
TIMING_COLUMNS = ["train_seconds", *PERFORMANCE_COLUMNS, "time"]
CSV_NAME = "results.csv"
PARQUET_NAME = "results.parquet"


class ResultsTable:
    """Rows kept in memory and rewritten atomically as CSV (and parquet) after every change."""

    def __init__(self, run_dir: Path, metric_order: list[str]) -> None:
        self.run_dir = Path(run_dir)
        self.metric_order = metric_order
        self.rows: list[dict[str, Any]] = []

    def columns(self) -> list[str]:
        seen = {k for row in self.rows for k in row}
        first = [c for c in self.metric_order if c in seen and c not in BASE_COLUMNS]
        last = [c for c in TRAILING_COLUMNS if c in seen]
        rest = sorted(seen - set(BASE_COLUMNS) - set(first) - set(last))
        return BASE_COLUMNS + first + rest + last

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=self.columns())
        return df.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Append rows and rewrite results.csv atomically (parquet is written by `flush_parquet`)."""
        self.rows.extend(rows)
        buf = io.StringIO()
        self.frame().to_csv(buf, index=False)
        atomic_write_bytes(self.run_dir / CSV_NAME, buf.getvalue().encode("utf-8"))

    def reset_cell(self, variant: str, dataset: str, seed: int, rows: list[dict[str, Any]]) -> None:
        """Replace one cell's rows by `rows` (a cell started again from its checkpoint's rows)."""
        self.rows = [r for r in self.rows
                     if (r["variant"], r["dataset"], r["seed"]) != (variant, dataset, seed)]  # fmt: skip
        self.add(rows)

    def flush_parquet(self) -> None:
        buf = io.BytesIO()
        self.frame().to_parquet(buf, index=False)
        atomic_write_bytes(self.run_dir / PARQUET_NAME, buf.getvalue())


def read_results(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / CSV_NAME)


def final_steps(df: pd.DataFrame) -> pd.DataFrame:
    """The last row of each cell (variant, dataset, seed); rows in step order, as results.csv is."""
    return df.groupby(KEY_COLUMNS[:3], sort=False, observed=True).tail(1)


def final_values(final: pd.DataFrame, variant: str, dataset: str, column: str) -> np.ndarray:
    """`column`'s finite values over the cells of `variant` on `dataset` that ended ok."""
    if column not in final:
        return np.array([])
    rows = final[(final["variant"] == variant) & (final["dataset"] == dataset)
                 & (final["status"] == "ok")]  # fmt: skip
    v = rows[column].to_numpy(dtype=float)
    return v[np.isfinite(v)]
