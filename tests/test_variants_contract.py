"""Every registered variant on every data shape it declares it can model: one CPU training step,
output shape and range, determinism, labels for conditional variants, the critic diagnostics."""

import math

import pydantic
import pytest
import torch

from bench import diagnostics
from bench.datasets import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS, load_all
from bench.seeding import seed_everything
from variants.nets import DATA_KINDS, data_kind

load_all()
CPU = torch.device("cpu")
NUM_CLASSES = 10
SPECS = {
    "points": DataSpec((2,), NUM_CLASSES),
    "mnist": DataSpec((1, 28, 28), NUM_CLASSES),
    "stacked_mnist": DataSpec((3, 28, 28), NUM_CLASSES),
    "cifar": DataSpec((3, 32, 32), NUM_CLASSES),
    "digits": DataSpec((1, 8, 8), NUM_CLASSES),
    "music": DataSpec((4, 2, 16, 84), NUM_CLASSES),  # piano rolls: tracks, bars, steps, pitches
}
# Narrow networks keep the whole file at a few seconds: the shared `arch` fields, or a variant's own.
SMALL = {"width": 16, "ngf": 8, "ndf": 8}
SMALL_OWN = {
    "stylegan": {"z_dim": 16, "w_dim": 16, "channels": 8, "d_channels": 8},
    "musegan": {"z_part": 4, "g_channels": 8, "d_channels": 8},
}


def arch_of(name: str) -> str | None:
    """The default `arch` of a variant on the shared architectures; None for one with its own."""
    return getattr(VARIANTS.get(name).Config(), "arch", None)


def models(name: str, data: str) -> bool:
    """The declared capability: can this variant's default architecture model these data? One
    without `arch` builds its own networks, for the data kinds it names (images unless it says)."""
    arch = arch_of(name)
    own = getattr(VARIANTS.get(name), "data_kinds", ("images",))
    return data_kind(SPECS[data]) in (DATA_KINDS[arch] if arch else own)


# Noise → sample GANs (the generation task); translation variants: tests/test_translation.py; the
# likelihood models without a critic: tests/test_vae.py and tests/test_autoregressive.py.
SAMPLERS = [v for v in VARIANTS.names() if {"samples", "critic"} <= VARIANTS.get(v).capabilities]
SUPPORTED = [(v, d) for v in SAMPLERS for d in SPECS if models(v, d)]
UNSUPPORTED = [(v, d) for v in SAMPLERS for d in SPECS if not models(v, d)]
CONDITIONAL = [(v, d) for v, d in SUPPORTED if VARIANTS.get(v).conditional]
CONDITIONAL_ARCHS = [
    (v, d, arch)
    for v in SAMPLERS
    for d in SPECS
    for arch in DATA_KINDS
    if VARIANTS.get(v).conditional and data_kind(SPECS[d]) in DATA_KINDS[arch]
]


def build(name: str, data: str, seed: int = 0, **overrides):
    seed_everything(seed, CPU)
    cls = VARIANTS.get(name)
    small = SMALL_OWN.get(name, SMALL)
    return cls(cls.Config.model_validate({**small, **overrides}), SPECS[data], CPU)


def batches(variant, data: str, seed: int = 0, batch_size: int = 16):
    """Synthetic real batches in [-1, 1] (and labels) from a seeded generator of their own."""
    g = torch.Generator().manual_seed(seed)
    shape = SPECS[data].shape

    def next_real():
        x = torch.rand((batch_size, *shape), generator=g) * 2 - 1
        if not variant.conditional:
            return x
        return x, torch.randint(NUM_CLASSES, (batch_size,), generator=g)

    return next_real


def sample(variant, n: int):
    z = torch.randn(n, variant.z_dim)
    labels = torch.arange(n) % NUM_CLASSES if variant.conditional else None
    return variant.generate(z, labels) if variant.conditional else variant.generate(z)


@pytest.mark.parametrize("name,data", SUPPORTED)
def test_one_training_step_on_cpu(name, data):
    variant = build(name, data)
    before = [p.clone() for p in variant.G.parameters()]
    losses = variant.train_step(batches(variant, data))
    assert losses and all(math.isfinite(v) for v in losses.values())
    assert {"loss/critic", "loss/generator"} <= set(losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, variant.G.parameters(), strict=True))
    x = sample(variant, 10)
    assert x.shape == (10, *SPECS[data].shape) and torch.isfinite(x).all()
    if data != "points":
        assert x.min() >= -1 and x.max() <= 1
    assert variant.family and variant.paper
    assert {"G", "D", "opt_G", "opt_D"} <= set(variant.state_dict())


@pytest.mark.parametrize("name,data", SUPPORTED)
def test_training_step_is_deterministic(name, data):
    def weights_after_steps():
        variant = build(name, data, seed=3)
        next_real = batches(variant, data, seed=3)
        for _ in range(3):
            variant.train_step(next_real)
        return [t.detach().clone() for t in [*variant.G.state_dict().values(), *variant.D.state_dict().values()]]  # fmt: skip

    for a, b in zip(weights_after_steps(), weights_after_steps(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name,data", UNSUPPORTED)
def test_data_an_architecture_cannot_model_is_refused_by_name(name, data):
    arch = arch_of(name)
    expected = f"arch '{arch}' models images only" if arch else "models images|needs piano rolls"
    with pytest.raises(UsageError, match=expected):
        build(name, data)


@pytest.mark.parametrize("name,data,arch", CONDITIONAL_ARCHS)
def test_conditional_variants_honour_labels(name, data, arch):
    variant = build(name, data, arch=arch)
    variant.train_step(batches(variant, data))
    z = torch.randn(8, variant.z_dim).repeat(2, 1)
    labels = torch.cat([torch.zeros(8), torch.ones(8)]).long()
    x = variant.generate(z, labels)
    assert not torch.allclose(x[:8], x[8:])
    with torch.no_grad():
        scores = variant.critic(x[:8].repeat(2, *[1] * (x.dim() - 1)), labels)
    assert not torch.allclose(scores[:8], scores[8:])
    with pytest.raises(ValueError, match="labels"):
        variant.generate(z)


@pytest.mark.parametrize("name,data", [(v, d) for v, d in SUPPORTED if (v, d) not in CONDITIONAL])
def test_critic_works_with_the_float64_gradient_diagnostic(name, data):
    # The harness calls D(x) on a float64 copy and hooks its activation layers (Gulrajani Fig. 1).
    variant = build(name, data)
    real = batches(variant, data)()
    fake = sample(variant, len(real))
    norms = diagnostics.activation_grad_norms(variant.D, variant.critic_loss, real, fake)
    assert norms and all(math.isfinite(n) for n in norms)


def test_latent_size_defaults_by_data_kind_and_can_be_set():
    assert build("gan", "points").z_dim == 2  # gan_toy.py
    assert build("gan", "mnist").z_dim == 100  # DCGAN
    assert build("gan", "mnist", z_dim=7).z_dim == 7


def test_dcgan_architecture_follows_the_papers_rules():
    variant = build("dcgan", "cifar")
    convs = [m for m in variant.D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 3 + [(1, 1)]  # 32 → 16 → 8 → 4 → logit
    assert not any(isinstance(m, torch.nn.Linear) for m in variant.D.modules())
    d_layers = list(variant.D)
    assert isinstance(d_layers[1], torch.nn.LeakyReLU)  # no batch norm on the input layer
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in variant.D.modules()) == 2
    g_layers = list(variant.G)
    assert isinstance(g_layers[-1], torch.nn.Tanh) and isinstance(
        g_layers[-2], torch.nn.ConvTranspose2d
    )
    weights = torch.cat([c.weight.flatten() for c in convs])
    assert weights.std().item() == pytest.approx(0.02, rel=0.1)


def test_wgan_gp_critic_has_no_batch_norm_and_refuses_it():
    for data in ["mnist", "digits"]:
        variant = build("wgan_gp", data, arch="dcgan")
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in variant.D.modules())
    layer = build("wgan_gp", "mnist", arch="dcgan", d_norm="layer")
    assert any(isinstance(m, torch.nn.GroupNorm) for m in layer.D.modules())
    with pytest.raises(pydantic.ValidationError):
        VARIANTS.get("wgan_gp").Config.model_validate({"d_norm": "batch"})


def test_wgan_keeps_every_critic_parameter_within_the_clip_value():
    for data in ["points", "mnist"]:
        variant = build("wgan", data, clip_value=0.02, arch="dcgan" if data == "mnist" else "mlp")
        variant.train_step(batches(variant, data))
        for p in variant.D.parameters():
            assert p.abs().max() <= 0.02


def test_variant_depth_and_width_are_configurable():
    variant = build("wgan_gp", "points", depth=5, width=8)
    linears = [m for m in variant.D.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 6 and linears[0].out_features == 8
