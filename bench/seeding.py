"""Seeds and random streams: one seed fixes model init, training noise, data order and evaluation."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

# Independent streams derived from a cell's seed; adding a stream never shifts another one.
STREAMS = {"data": 1, "eval": 2}


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed Python, NumPy and torch's global generators and switch on deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cuda":
        # cuBLAS needs a fixed workspace for deterministic results (set before the first cuBLAS call).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def stream(seed: int, name: str) -> torch.Generator:
    """A CPU torch.Generator for the named stream of `seed`."""
    state = np.random.SeedSequence([seed, STREAMS[name]]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 32) | int(state[1]))
