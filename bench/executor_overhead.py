"""What the Ray executor costs: one suite's wall time under local workers and Ray, 1 and 2 at once.

Each configuration is a real `bench run` of the same suite in a process of its own (tracking off,
so that MLflow's time is not counted): local worker processes, and Ray tasks on a private Ray that
the run starts for itself, with `workers` = 1 and 2 cells at once. Runs alternate and the fastest
of `repeats` is kept, so that load from other processes inflates neither side. The Ray overhead per
cell is (Ray wall time - Ray's start - local wall time) / cells at the same number of workers; Ray's
start (`ray.init` and its shutdown in a bare process) is measured on its own and stated apart.

`python -m bench.executor_overhead [suite] [profile] [repeats]` writes
results/benchmarks/executors.{json,md} and prints the table (`nox -s executors`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.io import atomic_write_json, atomic_write_text
from bench.results import TIMING_COLUMNS as TIMING

OUT = Path("results") / "benchmarks"
CONFIGS = [("local", 1), ("ray", 1), ("local", 2), ("ray", 2)]
RAY_START = "import time, ray; t = time.perf_counter(); ray.init(include_dashboard=False); " \
            "ray.shutdown(); print(time.perf_counter() - t)"  # fmt: skip


def timed_run(suite: str, profile: str, executor: str, workers: int, out: Path) -> float:
    """Wall seconds of one `bench run` (start of the process to its end)."""
    command = [sys.executable, "-m", "bench", "run", f"suite={suite}", f"profile={profile}",
               f"out={out}", f"train.executor={executor}", f"workers={workers}",
               "tracking.enabled=false"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def ray_start_seconds() -> float:
    done = subprocess.run([sys.executable, "-c", RAY_START], capture_output=True, text=True,
                          check=True, env={"RAY_USAGE_STATS_ENABLED": "0", **os.environ})  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def measure(suite: str, profile: str, repeats: int) -> dict:
    best: dict[str, float] = {}
    results: dict[str, pd.DataFrame] = {}
    starts = []
    with tempfile.TemporaryDirectory(prefix="bench-executors-") as tmp:
        for r in range(repeats):
            starts.append(ray_start_seconds())
            for executor, workers in CONFIGS:
                key = f"{executor}/{workers}"
                out = Path(tmp) / f"{executor}-{workers}-{r}"
                seconds = timed_run(suite, profile, executor, workers, out)
                best[key] = min(best.get(key, float("inf")), seconds)
                results[key] = pd.read_csv(out / "results.csv")
                print(f"{key}: {seconds:.1f} s", file=sys.stderr)
    cells = int(results["local/1"].groupby(["variant", "dataset", "seed"]).ngroups)
    # The numbers themselves must not depend on the executor or on how many cells run at once.
    reference = results["local/1"].drop(columns=TIMING, errors="ignore")
    for df in results.values():
        pd.testing.assert_frame_equal(
            df.drop(columns=TIMING, errors="ignore"), reference, check_exact=True
        )
    start = min(starts)
    overhead = {
        str(w): (best[f"ray/{w}"] - start - best[f"local/{w}"]) / cells for w in (1, 2)
    }  # fmt: skip
    return {"suite": suite, "profile": profile, "repeats": repeats, "cells": cells,
            "wall_seconds": best, "ray_start_seconds": start,
            "ray_overhead_per_cell_seconds": overhead, "identical_results": True}  # fmt: skip


def table(m: dict) -> str:
    lines = [
        f"# Executors: suite `{m['suite']}` (profile {m['profile']}), {m['cells']} cells, "
        f"fastest of {m['repeats']}",
        "",
        "| executor | cells at once | wall time (s) | against local, same workers |",
        "|---|---|---|---|",
    ]
    for key, seconds in m["wall_seconds"].items():
        executor, workers = key.split("/")
        ratio = seconds / m["wall_seconds"][f"local/{workers}"]
        lines.append(f"| {executor} | {workers} | {seconds:.1f} | {ratio:.2f}x |")
    over = m["ray_overhead_per_cell_seconds"]
    lines += [
        "",
        f"Ray's own start (a private `ray.init` and shutdown): {m['ray_start_seconds']:.1f} s per "
        f"run. Ray overhead per cell beyond that: {over['1']:.2f} s with 1 worker, "
        f"{over['2']:.2f} s with 2. Every configuration gave identical results (all but timing "
        "columns).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    suite = argv[0] if argv else "wgan_vs_gp"
    profile = argv[1] if len(argv) > 1 else "smoke"
    repeats = int(argv[2]) if len(argv) > 2 else 2
    m = measure(suite, profile, repeats)
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_json(OUT / "executors.json", m)
    atomic_write_text(OUT / "executors.md", table(m))
    print(table(m))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
