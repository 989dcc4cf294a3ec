"""Cell checkpoints: networks, optimisers, every random-number generator, counters and rows so far.

Written atomically (the previous checkpoint stays until the new one is complete) and loaded with
`weights_only=True`, so a checkpoint can hold tensors and plain containers but no arbitrary pickles.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.io import atomic_write_bytes

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) and the named torch generators, as plain data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in generators.items():
        g.set_state(state["generators"][name])


def save(path: Path, checkpoint: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None when there is none."""
    if not Path(path).is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
