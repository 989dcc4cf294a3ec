"""Speed gate: pytest-benchmark times relative to a calibration kernel timed in the same run.

A benchmark's absolute time says as much about the machine as about the code, so each benchmark is
divided by the time of a fixed kernel (convolutions and a matrix product, forward and backward, on
one thread: the work a training step does) measured just before and just after it. The gate fails
when a benchmark's ratio rises by more than the baseline's threshold over the baseline's ratio.
Both times are minima over rounds: noise from other processes only ever adds time.
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.env import cpu_name, git_state
from bench.errors import UsageError
from bench.regress import BASELINE_DIR, Outcome

KERNEL_VERSION = 1  # raise when calibration_kernel changes: old ratios are then not comparable
EXTRA_KEY = "calibration_kernel_s"  # where each benchmark's extra_info keeps the kernel's time
SPEED_BASELINE = BASELINE_DIR / "speed.json"
# Unchanged code moved a ratio by up to +30% over the baseline on an idle machine here (README).
DEFAULT_THRESHOLD = 0.5
# Benchmark group → its own threshold. A whole image evaluation (feature extraction, FID, KID over
# subsets, prdc's pairwise distances) mixes memory-bound work the calibration kernel does not have:
# on a CI machine, unchanged code rose +56% over the baseline, so these get +100%.
GROUP_THRESHOLDS = {"image-eval": 1.0}


@cache
def _kernel_inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 28, 28, generator=g)
    w1 = torch.randn(32, 1, 4, 4, generator=g).requires_grad_()
    w2 = torch.randn(64, 32, 4, 4, generator=g).requires_grad_()
    w3 = torch.randn(64 * 7 * 7, 128, generator=g).requires_grad_()
    return x, w1, w2, w3


def calibration_kernel() -> None:
    """A fixed amount of float32 work shaped like a small conv net's forward and backward pass."""
    x, w1, w2, w3 = _kernel_inputs()
    h = F.leaky_relu(F.conv2d(x, w1, stride=2, padding=1), 0.2)
    h = F.leaky_relu(F.conv2d(h, w2, stride=2, padding=1), 0.2)
    out = h.flatten(1) @ w3
    out.square().mean().backward()
    for w in (w1, w2, w3):
        w.grad = None


def time_calibration(rounds: int = 15) -> float:
    """Fastest of `rounds` runs of the calibration kernel on one torch thread, in seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        calibration_kernel()  # warm-up
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            calibration_kernel()
            best = min(best, time.perf_counter() - t0)
        return best
    finally:
        torch.set_num_threads(threads)


def read_ratios(path: Path) -> dict[str, dict[str, float]]:
    """benchmark id → {seconds, calibration_s, ratio} from a pytest-benchmark JSON file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a readable pytest-benchmark JSON file ({exc})") from None
    out = {}
    for b in data.get("benchmarks", []):
        cal = b.get("extra_info", {}).get(EXTRA_KEY)
        if not cal:
            raise UsageError(
                f"{path}: benchmark {b['fullname']} has no {EXTRA_KEY}; run the benchmarks with "
                "this project's tests/conftest.py, which times the kernel beside each benchmark"
            )
        out[b["fullname"]] = {"seconds": b["stats"]["min"], "calibration_s": cal,
                              "ratio": b["stats"]["min"] / cal, "group": b.get("group")}  # fmt: skip
    if not out:
        raise UsageError(f"{path}: no benchmarks in it (was pytest run with --benchmark-enable?)")
    return out


def make_speed_baseline(paths: list[Path], threshold: float) -> dict[str, Any]:
    """Per benchmark, the median ratio over the given runs (one file per run)."""
    runs = [read_ratios(p) for p in paths]
    measured = {n: [r[n] for r in runs if n in r] for n in sorted(set().union(*runs))}
    return {
        "kernel_version": KERNEL_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_state().get("commit"),
        "machine": {"cpu": cpu_name(), "torch": torch.__version__},
        "threshold": threshold,
        "statistic": "min time / min calibration-kernel time (both on one thread); median over runs",
        "runs": len(runs),
        "benchmarks": {
            n: {
                "ratio": statistics.median(m["ratio"] for m in ms),
                "ratios": [m["ratio"] for m in ms],
                "seconds": statistics.median(m["seconds"] for m in ms),
            }
            for n, ms in measured.items()
        },  # fmt: skip
    }


def read_speed_baseline(path: Path = SPEED_BASELINE) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"no speed baseline at {path}; make one with `nox -s baseline`")
    data = json.loads(path.read_text())
    if data.get("kernel_version") != KERNEL_VERSION:
        raise UsageError(f"{path}: measured with calibration kernel v{data.get('kernel_version')}, "
                         f"not v{KERNEL_VERSION}; make it again with `nox -s baseline`")  # fmt: skip
    return data


def compare_speed(baseline: dict[str, Any], path: Path) -> Outcome:
    """Each baseline benchmark's ratio in the run at `path` against the baseline's ratio, allowed
    the rise of its group in GROUP_THRESHOLDS, else the baseline's threshold."""
    fresh = read_ratios(path)
    failures, passed, notes = [], [], []
    if baseline["machine"]["cpu"] != cpu_name():
        notes.append(f"cpu: {cpu_name()!r} here, {baseline['machine']['cpu']!r} in the baseline "
                     "(ratios to the calibration kernel are meant to carry across machines)")  # fmt: skip
    for name, base in baseline["benchmarks"].items():
        if name not in fresh:
            failures.append(f"{name}: not measured in this run")
            continue
        now = fresh[name]
        threshold = GROUP_THRESHOLDS.get(now["group"], baseline["threshold"])
        rise = now["ratio"] / base["ratio"] - 1
        line = (f"{name}: {now['seconds'] * 1e3:.4g} ms = {now['ratio']:.3g}× the calibration kernel, "
                f"baseline {base['ratio']:.3g}× ({rise:+.0%}; the gate allows +{threshold:.0%})")  # fmt: skip
        (failures if rise > threshold else passed).append(line)
    for name in sorted(fresh.keys() - baseline["benchmarks"].keys()):
        notes.append(f"{name}: no baseline yet (nox -s baseline adds it)")
    return Outcome(failures, passed, notes)


def diff_speed(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    if old is None:
        return [f"new speed baseline: {len(new['benchmarks'])} benchmarks"]
    lines = []
    if old.get("kernel_version") != new["kernel_version"]:
        lines.append(f"calibration kernel: v{old.get('kernel_version')} → v{new['kernel_version']} "
                     "(old ratios are not comparable)")  # fmt: skip
    if old.get("threshold") != new["threshold"]:
        lines.append(f"threshold: {old.get('threshold')} → {new['threshold']}")
    before, after = old["benchmarks"], new["benchmarks"]
    lines += [f"removed {n}" for n in sorted(before.keys() - after.keys())]
    lines += [f"added {n}: {after[n]['ratio']:.3g}×" for n in sorted(after.keys() - before.keys())]
    for n in sorted(before.keys() & after.keys()):
        a, b = before[n]["ratio"], after[n]["ratio"]
        lines.append(f"{n}: {a:.3g}× → {b:.3g}× ({b / a - 1:+.0%})")
    return lines
