"""Every registered variant: one CPU training step, output shape, determinism."""

import pytest
import torch

from bench.datasets import DataSpec
from bench.registry import DATASETS, VARIANTS, load_all
from bench.seeding import seed_everything

load_all()
CPU = torch.device("cpu")


def build(name: str, seed: int = 0, **overrides):
    seed_everything(seed, CPU)
    cls = VARIANTS.get(name)
    cfg = cls.Config.model_validate({"width": 16, **overrides})
    return cls(cfg, DataSpec((2,)), CPU)


def batches(seed: int = 0):
    ds = DATASETS.get("8gaussians")()
    g = torch.Generator().manual_seed(seed)
    return lambda: ds.sample(32, g)


@pytest.mark.parametrize("name", VARIANTS.names())
def test_one_training_step_on_cpu(name):
    variant = build(name)
    before = [p.clone() for p in variant.G.parameters()]
    losses = variant.train_step(batches())
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, variant.G.parameters(), strict=True))
    x = variant.generate(torch.randn(10, variant.z_dim))
    assert x.shape == (10, 2) and torch.isfinite(x).all()
    assert variant.family and variant.paper


@pytest.mark.parametrize("name", VARIANTS.names())
def test_training_step_is_deterministic(name):
    def weights_after_steps():
        variant = build(name, seed=3)
        next_real = batches(3)
        for _ in range(3):
            variant.train_step(next_real)
        return [p.detach().clone() for p in variant.G.parameters()]

    for a, b in zip(weights_after_steps(), weights_after_steps(), strict=True):
        assert torch.equal(a, b)


def test_wgan_keeps_every_critic_parameter_within_the_clip_value():
    variant = build("wgan", clip_value=0.02)
    variant.train_step(batches())
    for p in variant.D.parameters():
        assert p.abs().max() <= 0.02


def test_variant_depth_and_width_are_configurable():
    variant = build("wgan_gp", depth=5, width=8)
    linears = [m for m in variant.D.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 6 and linears[0].out_features == 8
