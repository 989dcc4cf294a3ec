"""2-D toy distributions: WGAN-GP's toy sets (gan_toy.py) and the VEEGAN/PacGAN mode-coverage sets.

Every set is sampled afresh from a seeded generator, so the data order of a cell is fixed by its seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.datasets.base import Dataset
from bench.registry import DATASETS


class GaussianMixture2D(Dataset):
    """Equal-weight mixture of isotropic Gaussians around fixed centres, optionally rescaled."""

    shape = (2,)

    def __init__(self, name: str, centres: torch.Tensor, std: float, scale: float = 1.0) -> None:
        # Points are drawn as centre + std·N(0, I), then divided by `scale` (as gan_toy.py does),
        # so both the centres and the noise shrink by `scale`.
        self.name = name
        self.modes = (centres / scale).float()
        self.mode_std = std / scale

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.modes), (n,), generator=generator)
        noise = torch.randn(n, *self.shape, generator=generator)
        return self.modes[idx] + self.mode_std * noise


def _ring(k: int, radius: float) -> torch.Tensor:
    # Angles 2πk/K for k = 0..K-1: K distinct modes (linspace(0, 2π, K) would make two coincide).
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def _grid(values: list[float]) -> torch.Tensor:
    v = torch.tensor(values, dtype=torch.float64)
    return torch.cartesian_prod(v, v)


@DATASETS.register("8gaussians")
def eight_gaussians() -> Dataset:
    """8 Gaussians on a circle of radius 2, std 0.02, all divided by 1.414 (WGAN-GP gan_toy.py)."""
    return GaussianMixture2D("8gaussians", _ring(8, 2.0), std=0.02, scale=1.414)


@DATASETS.register("25gaussians")
def twentyfive_gaussians() -> Dataset:
    """25 Gaussians on the grid {-4,-2,0,2,4}², std 0.05, divided by 2.828 (WGAN-GP gan_toy.py)."""
    return GaussianMixture2D("25gaussians", _grid([-4, -2, 0, 2, 4]), std=0.05, scale=2.828)


@DATASETS.register("ring8")
def ring8() -> Dataset:
    """8 Gaussians on the unit circle, std 0.01 (PacGAN / VEEGAN ring)."""
    return GaussianMixture2D("ring8", _ring(8, 1.0), std=0.01)


@DATASETS.register("grid25")
def grid25() -> Dataset:
    """25 Gaussians on the grid {-4,-2,0,2,4}², std 0.05 (PacGAN / VEEGAN grid)."""
    return GaussianMixture2D("grid25", _grid([-4, -2, 0, 2, 4]), std=0.05)


class SwissRoll(Dataset):
    """Swiss roll, make_swiss_roll(noise=0.25) columns 0 and 2, divided by 7.5 (WGAN-GP gan_toy.py)."""

    name = "swissroll"
    shape = (2,)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        # scikit-learn draws from NumPy; seed it from the torch generator so one seed fixes the stream.
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        from sklearn.datasets import make_swiss_roll  # here: importing sklearn takes ~1.5 s

        points, _ = make_swiss_roll(
            n_samples=n, noise=0.25, random_state=np.random.RandomState(seed)
        )
        return torch.from_numpy(points[:, [0, 2]] / 7.5).float()


@DATASETS.register("swissroll")
def swissroll() -> Dataset:
    """Swiss roll, make_swiss_roll(noise=0.25) columns 0 and 2, divided by 7.5 (WGAN-GP gan_toy.py)."""
    return SwissRoll()
