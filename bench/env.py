"""What a result was measured on: code version, packages, device and thread setting."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

import torch

from bench.config import REPO_ROOT, Suite
from bench.errors import UsageError

PACKAGES = [
    "gan-bench", "torch", "torchvision", "numpy", "scipy", "pandas", "pyarrow", "scikit-learn",
    "matplotlib", "pydantic", "tqdm", "ray",
]  # fmt: skip


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the harness's checkout, or why they are unknown."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError) as exc:
        return {"commit": None, "dirty": None, "unknown_because": str(exc).splitlines()[0]}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def placement(suite: Suite) -> tuple[str, int, int]:
    """(device, worker processes: in all on CPU, per GPU on CUDA, torch threads per worker) for a
    local run or tuning of `suite`."""
    device = resolve_device(suite.spec.train.device)
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "train.device=cuda but no CUDA device is available; use device=auto or cpu"
        )
    default = (os.cpu_count() or 1) if device == "cpu" else 1
    return device, suite.spec.train.workers or default, suite.spec.train.threads


def environment(
    device: str, workers: int, threads: int, executor: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What a run is measured on; `executor` describes a Ray cluster (default: local processes)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    dev: dict[str, Any] = {"type": device}
    if device == "cuda" and torch.cuda.is_available():
        dev["name"] = torch.cuda.get_device_name(0)
        dev["count"] = torch.cuda.device_count()
        dev["cuda"] = torch.version.cuda
    elif device == "cpu":
        dev["name"] = cpu_name()
    return {
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "device": dev,
        "executor": executor or {"kind": "local"},
        # local: worker processes (per GPU on CUDA); ray: cells in flight at most (0: no limit)
        "workers": workers,
        "torch_threads_per_worker": threads,
        "deterministic_algorithms": True,
        "packages": versions,
    }
