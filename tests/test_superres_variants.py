"""Super-resolution variants (variants/bicubic.py, srresnet.py, srgan.py) on CPU: one step, output
shape and range, determinism, SRGAN's phases and content networks, checkpoints, refused data."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from bench.datasets import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS, load_all
from bench.seeding import seed_everything
from variants.losses import gan_discriminator_loss

load_all()
CPU = torch.device("cpu")
SPECS = {
    "grey28": DataSpec((1, 28, 28), 10, (1, 7, 7)),  # MNIST-sized HR from 7×7
    "rgb48": DataSpec((3, 48, 48), 0, (3, 12, 12)),
}
# Data for single checks: VGG19 on RGB images, and a ×2 scale.
OTHER_SPECS = {
    "rgb32": DataSpec((3, 32, 32), 0, (3, 8, 8)),
    "grey28x2": DataSpec((1, 28, 28), 10, (1, 14, 14)),
}
ALL_SPECS = {**SPECS, **OTHER_SPECS}
NAMES = ["bicubic", "srresnet", "srgan"]
# Narrow networks keep a step at a few milliseconds.
TINY = {"bicubic": {}, "srresnet": {"n_blocks": 2, "width": 8},
        "srgan": {"n_blocks": 2, "width": 8, "ndf": 8}}  # fmt: skip
NETWORK_STATE = {"G", "D", "opt_G", "opt_D", "sched_G", "sched_D"}


def content_net(channels: int) -> nn.Module:
    """A tiny frozen feature network, standing in for the one the harness hands over."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        net = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(4, 4, 3, stride=2, padding=1))  # fmt: skip
    return net.requires_grad_(False).eval()


def build(name, spec="grey28", seed=0, budget=10, net=None, **overrides):
    seed_everything(seed, CPU)
    cls = VARIANTS.get(name)
    data = ALL_SPECS[spec]
    variant = cls(cls.Config.model_validate({**TINY[name], **overrides}), data, CPU)
    if getattr(variant, "wants_content_network", False):
        variant.set_content_network(net or content_net(data.shape[0]), "tiny-conv")
    variant.set_budget(budget)
    return variant


def batches(spec="grey28", seed=0, n=4):
    """(lr, hr) pairs from a seeded generator: HR uniform in [-1, 1], LR its average-pooling."""
    g = torch.Generator().manual_seed(seed)
    shape = ALL_SPECS[spec].shape
    scale = shape[-1] // ALL_SPECS[spec].source_shape[-1]

    def next_real():
        hr = torch.rand((n, *shape), generator=g) * 2 - 1
        return F.avg_pool2d(hr, scale), hr

    return next_real


def weights(variant, net=None):
    return {f"{name}.{k}": t.clone() for name, state in variant.networks().items()
            if net in (None, name) for k, t in state.items()}  # fmt: skip


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", NAMES)
def test_one_step_gives_finite_losses_and_hr_images_in_range(name, spec):
    # SRGAN without pretraining, so that its first step is adversarial.
    variant = build(name, spec, **({"pretrain_fraction": 0.0} if name == "srgan" else {}))
    before = weights(variant)
    losses = variant.train_step(batches(spec))
    assert all(math.isfinite(v) for v in losses.values())
    lr, hr = batches(spec, seed=1)()
    out = variant.translate(lr)
    assert out.shape == hr.shape and out.min() >= -1 and out.max() <= 1
    assert variant.family == "superres" and variant.paper and "upscales" in variant.capabilities
    if name == "bicubic":
        assert losses == {} and weights(variant) == {} and variant.state_dict() == {}
        bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
        assert torch.equal(out, bicubic.clamp(-1, 1))
        return
    moved = weights(variant)
    assert any(not torch.equal(before[k], moved[k]) for k in before if k.startswith("G."))
    if name == "srresnet":
        assert set(losses) == {"loss/mse"} and set(variant.state_dict()) == {"G", "opt_G"}
        return
    content = f"loss/content/{variant.content_network_name}"  # the column names the network
    assert set(losses) == {"loss/mse", content, "loss/generator", "loss/critic"}
    assert any(not torch.equal(before[k], moved[k]) for k in before if k.startswith("D."))
    assert variant.critic_network() is variant.D
    with torch.no_grad():
        real_out, fake_out = variant.critic(hr), variant.critic(out)
    assert real_out.shape == (len(hr), 1)
    assert variant.critic_loss(real_out, fake_out) == gan_discriminator_loss(real_out, fake_out)


def test_bicubic_clips_the_overshoot_of_sharp_edges():
    variant = build("bicubic")
    lr = torch.ones(2, 1, 7, 7)
    lr[..., ::2, :] = -1  # stripes: bicubic's negative lobes overshoot past ±1
    raw = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert raw.abs().max() > 1
    assert torch.equal(variant.translate(lr), raw.clamp(-1, 1))


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", NAMES)
def test_training_is_deterministic(name, spec):
    def after_three_steps():
        variant = build(name, spec, budget=4)  # SRGAN: steps 1–2 pretrain, step 3 is adversarial
        next_real = batches(spec)
        for _ in range(3):
            variant.train_step(next_real)
        return weights(variant), variant.translate(batches(spec, seed=1)()[0])

    (w1, out1), (w2, out2) = after_three_steps(), after_three_steps()
    assert same(w1, w2) and torch.equal(out1, out2)


def test_srgan_pretrains_g_alone_then_trains_d_and_drops_the_rate():
    variant = build("srgan", budget=4, pretrain_fraction=0.5, lr_drop=0.5)
    next_real = batches()
    for step in (1, 2):  # MSE only: D is neither trained nor even run (its BN buffers stay)
        d_before, g_before = weights(variant, "D"), weights(variant, "G")
        assert set(variant.train_step(next_real)) == {"loss/mse"}
        assert same(weights(variant, "D"), d_before), step
        assert not same(weights(variant, "G"), g_before), step
    d_before = weights(variant, "D")
    assert "loss/critic" in variant.train_step(next_real)
    assert not same(weights(variant, "D"), d_before)
    # Half the adversarial phase (steps 3–4) is done: the fourth step runs at a tenth of the rate.
    for opt in (variant.opt_G, variant.opt_D):
        assert opt.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_srgan_needs_its_budget_and_its_content_network_before_training():
    cls = VARIANTS.get("srgan")
    mse_cfg = cls.Config.model_validate({**TINY["srgan"], "content_loss": "mse"})
    with pytest.raises(RuntimeError, match="set_budget"):
        cls(mse_cfg, SPECS["grey28"], CPU).train_step(batches())
    no_net = cls(cls.Config.model_validate(TINY["srgan"]), SPECS["grey28"], CPU)
    no_net.set_budget(4)
    assert no_net.wants_content_network
    with pytest.raises(RuntimeError, match="set_content_network"):
        no_net.train_step(batches())
    mse = build("srgan", content_loss="mse")
    assert not mse.wants_content_network and mse.content_network_name == "pixels"


def test_srgan_trains_through_a_frozen_domain_network_without_training_or_saving_it():
    net = content_net(1)
    frozen = {k: t.clone() for k, t in net.state_dict().items()}
    variant = build("srgan", net=net, pretrain_fraction=0.0, content_scale=3.0)
    assert variant.content_network_name == "tiny-conv"
    next_real = batches()
    for _ in range(2):
        losses = variant.train_step(next_real)
        assert math.isfinite(losses["loss/content/tiny-conv"])
    assert same({k: t for k, t in net.state_dict().items()}, frozen)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert set(variant.networks()) == {"G", "D"} and set(variant.state_dict()) == NETWORK_STATE
    # The content loss is content_scale × the MSE between the network's feature maps.
    lr, hr = next_real()
    with torch.no_grad():
        fake = variant.translate(lr)
        expected = 3.0 * F.mse_loss(net(fake), net(hr))
        assert torch.allclose(variant.content_loss(fake, hr), expected)


def test_srgan_vgg54_needs_its_weights_file():
    with pytest.raises(UsageError, match="vgg_weights"):
        build("srgan", content_loss="vgg54")
    # The harness asks before the run starts, so a suite without the file is refused up front.
    cls = VARIANTS.get("srgan")
    problem = cls.data_problem(SPECS["grey28"], cls.Config(content_loss="vgg54"))
    assert "needs vgg_weights" in problem
    with pytest.raises(UsageError, match="no/such/vgg19.pth"):
        build("srgan", content_loss="vgg54", vgg_weights="no/such/vgg19.pth")


def test_srgan_vgg54_trains_on_vgg19_features_rescaled_by_1_over_12_75(tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), path)
    variant = build("srgan", "rgb32", content_loss="vgg54", vgg_weights=str(path),
                    pretrain_fraction=0.0)  # fmt: skip
    assert variant.content_network_name == "vgg54:vgg19.pth"
    losses = variant.train_step(batches("rgb32", n=2))
    assert all(math.isfinite(v) for v in losses.values())
    assert set(variant.state_dict()) == NETWORK_STATE  # VGG19 is neither trained nor saved

    vgg = torchvision.models.vgg19(weights=None)
    vgg.load_state_dict(torch.load(path, weights_only=True))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    lr, hr = batches("rgb32", seed=1, n=2)()
    with torch.no_grad():
        fake = variant.translate(lr)
        phi = [vgg.features[:36](((x + 1) / 2 - mean) / std) for x in (fake, hr)]
        assert torch.allclose(variant.content_loss(fake, hr), F.mse_loss(*phi) / 12.75**2)
        grey = fake[:, :1], hr[:, :1]  # grey images are repeated to three channels
        rgb = [x.repeat(1, 3, 1, 1) for x in grey]
        assert torch.equal(variant.content_loss(*grey), variant.content_loss(*rgb))


def test_srgan_resumes_to_the_same_weights_across_the_phase_change():
    def run(variant, data):
        for batch in data:
            variant.train_step(lambda batch=batch: batch)

    next_real = batches()
    data = [next_real() for _ in range(4)]
    uninterrupted = build("srgan", budget=4, pretrain_fraction=0.5)
    run(uninterrupted, data)

    first = build("srgan", budget=4, pretrain_fraction=0.5)
    run(first, data[:2])
    state, rng = copy.deepcopy(first.state_dict()), torch.get_rng_state()
    assert set(state) == NETWORK_STATE
    # A different seed: only what the checkpoint holds can make the two runs meet.
    resumed = build("srgan", seed=1, budget=4, pretrain_fraction=0.5)
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    run(resumed, data[2:])  # step 3 starts the adversarial phase, step 4 drops the rate
    assert same(weights(resumed), weights(uninterrupted))
    assert resumed.opt_G.param_groups[0]["lr"] == uninterrupted.opt_G.param_groups[0]["lr"]

    # Without the schedulers the phase clock restarts: G pretrains again and D never moves.
    clockless = build("srgan", seed=1, budget=4, pretrain_fraction=0.5)
    clockless.load_state_dict({k: v for k, v in state.items() if not k.startswith("sched")})
    run(clockless, data[2:])
    assert same(weights(clockless, "D"), weights(first, "D"))
    assert not same(weights(clockless), weights(uninterrupted))


def test_srgan_discriminator_and_generator_follow_figure_4():
    variant = build("srgan", ndf=8)
    convs = [m for m in variant.D.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32, 64, 64]
    assert isinstance(variant.D[1], nn.LeakyReLU)  # no batch norm on the input layer
    linears = [m for m in variant.D.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 2 * 2, 1024), (1024, 1)]
    shuffles = [m for m in variant.G.modules() if isinstance(m, nn.PixelShuffle)]
    assert len(shuffles) == 2  # ×4 = two ×2 sub-pixel stages
    x2 = build("srresnet", "grey28x2")
    assert sum(isinstance(m, nn.PixelShuffle) for m in x2.G.modules()) == 1
    assert x2.translate(torch.zeros(2, 1, 14, 14)).shape == (2, 1, 28, 28)


def test_data_the_variants_cannot_upscale_is_refused_with_a_reason():
    scale3 = DataSpec((1, 27, 27), 10, (1, 9, 9))
    unpaired = DataSpec((1, 28, 28), 10)
    ragged = DataSpec((1, 28, 28), 10, (1, 8, 8))
    for name in NAMES:
        cls = VARIANTS.get(name)
        assert all(cls.data_problem(spec) is None for spec in ALL_SPECS.values()), name
        assert "source_shape" in cls.data_problem(unpaired), name
        assert cls.data_problem(ragged), name
    assert VARIANTS.get("bicubic").data_problem(scale3) is None  # any integer scale
    for name in ("srresnet", "srgan"):
        assert "power of two" in VARIANTS.get(name).data_problem(scale3)
    vgg54 = VARIANTS.get("srgan").Config(content_loss="vgg54")
    problem = VARIANTS.get("srgan").data_problem(DataSpec((2, 28, 28), 0, (2, 7, 7)), vgg54)
    assert "grey or RGB" in problem
