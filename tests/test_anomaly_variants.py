"""The anomaly-scoring variants (anogan, f_anogan, conv_autoencoder): training steps, the contract of
`anomaly_scores`, AnoGAN's latent search, and f-AnoGAN's two stages across a checkpoint."""

import math

import pytest
import torch

from bench.datasets import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS, load_all
from bench.seeding import seed_everything
from bench.tasks.base import evaluation_mode

load_all()
CPU = torch.device("cpu")
MNIST = DataSpec((1, 28, 28))
SMALL = {"ngf": 8, "ndf": 8}
ANOMALY = ["anogan", "f_anogan", "conv_autoencoder"]


def build(name: str, seed: int = 0, gen_steps: int = 4, **overrides):
    seed_everything(seed, CPU)
    cls = VARIANTS.get(name)
    variant = cls(cls.Config.model_validate({**SMALL, **overrides}), MNIST, CPU)
    variant.set_budget(gen_steps)
    return variant


def batches(images: torch.Tensor | None = None, seed: int = 0, batch_size: int = 16):
    """Batches drawn from `images`, or uniform noise in [-1, 1], from a generator of their own."""
    g = torch.Generator().manual_seed(seed)

    def next_real():
        if images is None:
            return torch.rand((batch_size, *MNIST.shape), generator=g) * 2 - 1
        return images[torch.randint(len(images), (batch_size,), generator=g)]

    return next_real


def tensors(obj, path: str = "") -> dict[str, torch.Tensor]:
    """Copies of every tensor inside nested dicts and lists, by path."""
    if isinstance(obj, torch.Tensor):
        return {path: obj.clone()}
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    )
    return {k: v for key, value in items for k, v in tensors(value, f"{path}.{key}").items()}


def snapshot(variant) -> dict[str, torch.Tensor]:
    """Every tensor of every network and optimiser, and every parameter's requires_grad flag."""
    flags = {f"{name}.{k}.requires_grad": torch.tensor(p.requires_grad)
             for name, net in vars(variant).items() if isinstance(net, torch.nn.Module)
             for k, p in net.named_parameters()}  # fmt: skip
    return tensors(variant.state_dict()) | flags


def scores(variant, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    with evaluation_mode(variant, "running"):
        return variant.anomaly_scores(x, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ANOMALY)
def test_scores_are_per_image_and_leave_no_trace(name):
    variant = build(name, search_steps=5) if name == "anogan" else build(name)
    next_real = batches()
    for _ in range(4):  # f_anogan: 3 GAN steps, then 1 encoder step
        losses = variant.train_step(next_real)
        assert losses and all(math.isfinite(v) for v in losses.values())
    assert variant.family == "anomaly" and variant.paper
    assert "scores_anomalies" in variant.capabilities

    x = batches(seed=1, batch_size=6)()
    before, rng = snapshot(variant), torch.random.get_rng_state()
    six = scores(variant, x)
    assert torch.equal(torch.random.get_rng_state(), rng)  # the global generator is untouched
    after = snapshot(variant)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "scoring changed a network"
    assert six.shape == (6,) and six.dtype == torch.float32 and six.device.type == "cpu"
    assert torch.isfinite(six).all()
    three = scores(variant, x[:3])
    torch.testing.assert_close(three, six[:3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ANOMALY)
def test_data_the_dcgan_networks_cannot_take_are_refused(name):
    cls = VARIANTS.get(name)
    assert cls.data_problem(MNIST) is None
    assert "images" in cls.data_problem(DataSpec((2,)))
    assert "side" in cls.data_problem(DataSpec((1, 7, 7)))
    with pytest.raises(UsageError, match="images"):
        cls(cls.Config.model_validate(SMALL), DataSpec((2,)), CPU)


def test_anogan_latent_search_lowers_the_loss_of_normal_images():
    from bench.datasets.images import mnist5k, to_float

    data = mnist5k()
    train, train_labels = data.split("train")
    held_out, held_out_labels = data.split("held_out")
    zeros = to_float(train[train_labels == 0][:64])
    variant = build("anogan", z_dim=16)
    next_real = batches(zeros)
    for _ in range(100):
        variant.train_step(next_real)

    x = to_float(held_out[held_out_labels == 0][:8])
    start = variant.cfg
    variant.cfg = start.model_copy(update={"search_steps": 0})
    unsearched = scores(variant, x)
    variant.cfg = start.model_copy(update={"search_steps": 50})
    searched = scores(variant, x)  # the same generator seed: the same starting latents
    assert (searched < unsearched).all(), (searched, unsearched)


def test_f_anogan_trains_the_gan_then_only_the_encoder_and_resumes_in_its_stage():
    variant = build("f_anogan", gen_steps=8)  # 6 GAN steps, then 2 encoder steps
    assert variant.gan_steps == 6
    next_real = batches()
    E0 = {k: v.clone() for k, v in variant.E.state_dict().items()}
    for _ in range(6):
        assert variant.phase == "gan"
        assert "loss/generator" in variant.train_step(next_real)
    assert all(torch.equal(v, variant.E.state_dict()[k]) for k, v in E0.items())
    assert variant.phase == "encoder"

    # A checkpoint taken now resumes in the encoder stage.
    fresh = build("f_anogan", seed=1, gen_steps=8)
    fresh.load_state_dict(variant.state_dict())
    assert fresh.phase == variant.phase == "encoder"
    assert fresh.sched_E.last_epoch == variant.sched_E.last_epoch == 6

    # An encoder step changes E and nothing of G and D, buffers included.
    gan = {f"{n}.{k}": v.clone() for n in ["G", "D"]
           for k, v in getattr(variant, n).state_dict().items()}  # fmt: skip
    E1 = {k: v.clone() for k, v in variant.E.state_dict().items()}
    losses = variant.train_step(next_real)
    assert set(losses) == {"loss/encoder", "loss/encoder_image", "loss/encoder_features"}
    after = {f"{n}.{k}": v for n in ["G", "D"] for k, v in getattr(variant, n).state_dict().items()}
    assert all(torch.equal(v, after[k]) for k, v in gan.items())
    assert any(not torch.equal(v, variant.E.state_dict()[k]) for k, v in E1.items())
    assert all(p.requires_grad for p in variant.G.parameters())


def test_f_anogan_needs_its_budget_before_training():
    cls = VARIANTS.get("f_anogan")
    variant = cls(cls.Config.model_validate(SMALL), MNIST, CPU)
    with pytest.raises(RuntimeError, match="set_budget"):
        variant.train_step(batches())
