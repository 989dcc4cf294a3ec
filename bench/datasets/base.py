"""What the harness needs from a dataset."""

from __future__ import annotations

import hashlib

import torch


class Dataset:
    """A source of real samples. Randomness comes only from the generator passed in."""

    name: str = ""
    dim: int = 0
    # Mode centres [K, dim] and the per-coordinate noise std of each mode; None for data without modes.
    modes: torch.Tensor | None = None
    mode_std: float | None = None

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` real samples as a float32 tensor [n, dim]."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """sha256 of 1,000 samples drawn with a fixed seed: it changes whenever the data does."""
        x = self.sample(1000, torch.Generator().manual_seed(0))
        return hashlib.sha256(x.numpy().tobytes()).hexdigest()
