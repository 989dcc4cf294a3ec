"""Peak memory of a cell: CUDA peak allocated on a GPU, peak resident set of the process on CPU."""

from __future__ import annotations

import resource
from pathlib import Path

import torch


def reset_peak(device: torch.device) -> str:
    """Start a new peak measurement; returns what the peak will cover (recorded with the results)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda max_memory_allocated since the cell started"
    try:
        # Writing 5 to clear_refs resets the kernel's VmHWM (peak RSS) for this process (Linux ≥ 4.0).
        Path("/proc/self/clear_refs").write_text("5")
        return "process peak RSS (VmHWM) since the cell started"
    except OSError:
        return "process peak RSS since the worker started (could not reset VmHWM)"


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
