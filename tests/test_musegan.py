"""MuseGAN (variants/musegan.py): each sharing mode generates piano rolls and trains; a step repeats
exactly; latents are shared or private as the mode says; only G has batch norm; the block layers
equal strided convolutions; jamming's gradient penalty is per track; the data shapes it refuses."""

import math

import pytest
import torch
from torch import nn

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from variants.losses import gradient_penalty
from variants.musegan import (
    BlockDown,
    BlockUp,
    MuseGAN,
    MuseGANConfig,
    TrackCritics,
    track_gradient_penalty,
)

CPU = torch.device("cpu")
SATB = DataSpec((4, 2, 16, 84))
MODES = ["jamming", "composer", "hybrid"]
Z_PART = 4


def build(sharing, seed=0, data=SATB):
    torch.manual_seed(seed)
    cfg = MuseGANConfig(sharing=sharing, z_part=Z_PART, g_channels=8, d_channels=8)
    return MuseGAN(cfg, data, CPU)


def rolls(seed=0, n=4):
    g = torch.Generator().manual_seed(seed)

    def next_real():
        return (torch.rand((n, *SATB.shape), generator=g) < 0.1).float() * 2 - 1

    return next_real


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("sharing", MODES)
def test_generates_piano_rolls_and_trains(sharing):
    model = build(sharing)
    parts = {"jamming": 8, "composer": 2, "hybrid": 10}[sharing]
    assert model.z_dim == parts * Z_PART
    out = model.generate(torch.randn(3, model.z_dim))
    assert out.shape == (3, 4, 2, 16, 84) and out.abs().max() <= 1
    assert model.critic(out).shape == (3, 1)

    g_before, d_before = params(model.G), params(model.D)
    losses = model.train_step(rolls())
    assert set(losses) == {"loss/critic", "loss/gradient_penalty", "loss/generator"}
    assert all(math.isfinite(v) for v in losses.values())
    assert not same(g_before, params(model.G)) and not same(d_before, params(model.D))


@pytest.mark.parametrize("sharing", MODES)
def test_steps_repeat_exactly(sharing):
    runs = []
    for _ in range(2):
        model = build(sharing, seed=3)
        next_real = rolls(seed=1)
        model.train_step(next_real)
        model.train_step(next_real)
        runs.append(params(model.G) + params(model.D))
    assert same(*runs)


def changed_tracks(model, z, entries):
    """The tracks whose output moves when `entries` of z are changed (G in eval mode)."""
    model.G.eval()
    other = z.clone()
    other[:, entries] += 1.0
    with torch.no_grad():
        diff = (model.G(z) - model.G(other)).abs().flatten(2).amax(2).amax(0)
    return {i for i, d in enumerate(diff.tolist()) if d > 0}


def part(k):
    return slice(k * Z_PART, (k + 1) * Z_PART)


def test_jamming_latents_are_private():
    model = build("jamming")
    z = torch.randn(2, model.z_dim)
    # Parts are [z_1, z_1t, z_2, z_2t, ...]: track 0 owns parts 0 and 1.
    assert changed_tracks(model, z, part(0)) == {0}
    assert changed_tracks(model, z, part(1)) == {0}
    assert changed_tracks(model, z, part(5)) == {2}


def test_composer_latents_are_shared_only():
    model = build("composer")
    assert model.z_dim == 2 * Z_PART
    z = torch.randn(2, model.z_dim)
    assert changed_tracks(model, z, part(0)) == {0, 1, 2, 3}
    assert changed_tracks(model, z, part(1)) == {0, 1, 2, 3}


def test_hybrid_has_shared_and_private_latents():
    model = build("hybrid")
    z = torch.randn(2, model.z_dim)
    # Parts are [z, z_t, z_1, z_1t, z_2, z_2t, ...].
    assert changed_tracks(model, z, part(0)) == {0, 1, 2, 3}
    assert changed_tracks(model, z, part(1)) == {0, 1, 2, 3}
    assert changed_tracks(model, z, part(2)) == {0}
    assert changed_tracks(model, z, part(3)) == {0}
    assert changed_tracks(model, z, part(9)) == {3}


@pytest.mark.parametrize("sharing", MODES)
def test_only_the_generator_has_batch_norm(sharing):
    model = build(sharing)
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for m in model.D.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.G.modules())


def test_block_layers_equal_strided_convolutions():
    x = torch.randn(3, 5, 8, 14)
    conv, down = nn.Conv2d(5, 6, (2, 7), stride=(2, 7)), BlockDown(5, 6, (2, 7))
    with torch.no_grad():
        down.linear.weight.copy_(conv.weight.flatten(1))
        down.linear.bias.copy_(conv.bias)
    assert torch.allclose(down(x), conv(x), atol=1e-6)

    conv_t, block_up = nn.ConvTranspose2d(5, 6, (2, 3), stride=(2, 3)), BlockUp(5, 6, (2, 3))
    with torch.no_grad():
        block_up.linear.weight.copy_(conv_t.weight.flatten(1).T)
        block_up.bias.copy_(conv_t.bias)
    assert torch.allclose(block_up(x), conv_t(x), atol=1e-6)


class Linear(nn.Module):
    """A critic w·x whose gradient is w everywhere, so its penalty is (‖w‖ - 1)²."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1, keepdim=True)


def test_jamming_gradient_penalty_is_per_track():
    torch.manual_seed(0)
    shape = (1, 2, 16, 12)
    scales = [0.5, 1.0, 2.0]
    critics = TrackCritics([Linear(torch.randn(shape) * s / math.sqrt(384)) for s in scales])
    real, fake = torch.randn(5, 3, 2, 16, 12), torch.randn(5, 3, 2, 16, 12)
    alpha = torch.rand(5, 1, 1, 1, 1)

    penalty = track_gradient_penalty(critics, real, fake, alpha)
    per_track = sum(
        gradient_penalty(c, real[:, i : i + 1], fake[:, i : i + 1], alpha)
        for i, c in enumerate(critics.critics)
    )
    closed_form = sum((c.w.norm() - 1) ** 2 for c in critics.critics)
    assert torch.allclose(penalty, per_track) and torch.allclose(penalty, closed_form)
    # One penalty on the summed score would be (√Σ‖w_i‖² - 1)², a different number.
    assert not torch.allclose(penalty, gradient_penalty(critics, real, fake, alpha))


@pytest.mark.parametrize(
    ("shape", "words"),
    [((4, 2, 15, 84), "divisible by 8"), ((4, 2, 16, 80), "divisible by 12"),
     ((1, 28, 28), "(tracks, bars, steps, pitches)")],
)  # fmt: skip
def test_refuses_shapes_it_cannot_build(shape, words):
    problem = MuseGAN.data_problem(DataSpec(shape))
    assert problem is not None and words in problem
    with pytest.raises(UsageError, match="musegan"):
        MuseGAN(MuseGANConfig(), DataSpec(shape), CPU)


def test_accepts_satb_rolls():
    assert MuseGAN.data_problem(SATB) is None
    assert MuseGAN.data_kinds == ("music",)
