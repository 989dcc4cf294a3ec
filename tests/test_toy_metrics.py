import math

import numpy as np
import pytest
import torch
from scipy import stats

from bench.metrics import NotApplicable
from bench.registry import DATASETS, METRICS, load_all

load_all()
N = 2500  # PacGAN's evaluation sample count


def metric(name, real, fake, dataset):
    return METRICS.get(name)(real, fake, dataset)


@pytest.mark.parametrize(
    "name,k", [("ring8", 8), ("grid25", 25), ("8gaussians", 8), ("25gaussians", 25)]
)
def test_true_distribution_captures_every_mode(name, k):
    ds = DATASETS.get(name)()
    real = ds.sample(N, torch.Generator().manual_seed(1))
    fake = ds.sample(N, torch.Generator().manual_seed(2))
    assert metric("modes_captured", real, fake, ds) == k
    # P(‖noise‖ ≤ 3σ) for a 2-D isotropic Gaussian is 1 - exp(-4.5) ≈ 0.989; binomial sd ≈ 0.002.
    assert metric("hq_fraction", real, fake, ds) == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert metric("mode_kl", real, fake, ds) < 0.05


def test_generator_collapsed_to_three_modes_captures_three():
    ds = DATASETS.get("ring8")()
    g = torch.Generator().manual_seed(0)
    chosen = torch.tensor([0, 3, 5])
    idx = chosen[torch.randint(3, (N,), generator=g)]
    fake = ds.modes[idx] + ds.mode_std * torch.randn(N, 2, generator=g)
    assert metric("modes_captured", fake, fake, ds) == 3
    # Equal thirds over 3 of 8 modes: KL to uniform = log(8/3), up to sampling noise.
    assert metric("mode_kl", fake, fake, ds) == pytest.approx(math.log(8 / 3), abs=0.01)


def test_samples_far_from_every_mode_are_not_high_quality():
    ds = DATASETS.get("grid25")()
    fake = torch.full((100, 2), 1.0)  # halfway between grid points
    assert metric("modes_captured", fake, fake, ds) == 0
    assert metric("hq_fraction", fake, fake, ds) == 0
    with pytest.raises(NotApplicable, match="no high-quality samples"):
        metric("mode_kl", fake, fake, ds)


def test_mode_metrics_refuse_data_without_modes():
    ds = DATASETS.get("swissroll")()
    x = ds.sample(100, torch.Generator().manual_seed(0))
    with pytest.raises(NotApplicable, match="has no modes"):
        metric("modes_captured", x, x, ds)


def test_energy_distance_matches_scipy_in_one_dimension():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(0.5, 2.0, size=200)
    ours = metric("energy_distance", torch.tensor(a)[:, None], torch.tensor(b)[:, None], None)
    assert ours == pytest.approx(stats.energy_distance(a, b), rel=1e-9)


def test_energy_distance_is_zero_for_identical_samples_and_grows_with_shift():
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    assert metric("energy_distance", x, x, None) == pytest.approx(0.0, abs=1e-6)
    near = metric("energy_distance", x, x + 0.1, None)
    far = metric("energy_distance", x, x + 1.0, None)
    assert 0 < near < far
