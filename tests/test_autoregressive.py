"""PixelCNN and PixelRNN, Row LSTM and Diagonal BiLSTM (variants/pixelcnn.py, variants/pixelrnn.py):
causality of the masks and recurrences, fast sampling equal to the naive full-pass sampler, samples
consistent with the full pass, exact likelihoods, the training step, data checks."""

import math

import pytest
import torch

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.seeding import seed_everything
from variants.likelihood import (
    bernoulli_nll,
    bits_per_dim,
    categorical_nll,
    sample_with_uniforms,
    to_levels,
    uniforms,
)
from variants.pixelcnn import PixelCNN, pixel
from variants.pixelrnn import PixelRNN

CPU = torch.device("cpu")
# Tiny configs by test id: the variant and its config.
MODELS = {
    "PixelCNN": (PixelCNN, {"channels": 8, "n_layers": 2}),
    "PixelRNN": (PixelRNN, {"hidden": 4, "n_layers": 2}),
    "PixelRNN-diagonal": (PixelRNN, {"hidden": 4, "n_layers": 2, "cell": "diagonal_bilstm"}),
}
KINDS = ["categorical", "bernoulli"]
CASES = [(model, kind) for model in MODELS for kind in KINDS]
IDS = [f"{model}-{kind}" for model, kind in CASES]
# The Diagonal BiLSTM samples with the full pass itself; the others have a cached sampling step.
CACHED = [case for case in CASES if case[0] != "PixelRNN-diagonal"]
CACHED_IDS = [f"{model}-{kind}" for model, kind in CACHED]


def build(model: str, kind: str, size: int = 8, seed: int = 0, **overrides):
    """A tiny model on size×size one-channel data, binarised for the Bernoulli output."""
    seed_everything(seed, CPU)
    variant, config = MODELS[model]
    cfg = variant.Config.model_validate({**config, "output": kind, **overrides})
    return variant(cfg, DataSpec((1, size, size), binary=kind == "bernoulli"), CPU)


def images(kind: str, n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1]: 8-bit levels, or ±1 for binarised data."""
    g = torch.Generator().manual_seed(seed)
    if kind == "bernoulli":
        return torch.randint(0, 2, (n, 1, size, size), generator=g).float() * 2 - 1
    return torch.randint(0, 256, (n, 1, size, size), generator=g).float() / 127.5 - 1


@torch.no_grad()
def perturb(variant) -> None:
    """Random weights with none of them zero, so every path the masks allow carries signal."""
    for p in variant.G.parameters():
        p.add_(torch.randn_like(p).sign() * 0.1)


@pytest.mark.parametrize(("model", "kind"), CASES, ids=IDS)
def test_pixel_sees_only_earlier_pixels(model, kind):
    variant = build(model, kind)
    perturb(variant)
    x = images(kind, 1, 8).requires_grad_()
    logits = variant.G(x)
    for i in [0, 1, 7, 8, 27, 63]:
        r, c = divmod(i, 8)
        own = pixel(logits, r, c)
        (grad,) = torch.autograd.grad(own.sum(), x, retain_graph=True)
        grad = grad.flatten()
        assert torch.all(grad[i:] == 0), f"pixel {i} sees pixel {i + grad[i:].nonzero()[0].item()}"
        assert i == 0 or grad[:i].abs().max() > 0, f"pixel {i} sees nothing before it"
        if model == "PixelRNN-diagonal":
            # Section 3.2's complete dependency field, less one pixel: the previous row's last
            # one, where it lies beyond the 7×7 mask's reach of 3 columns. Only later rows' inputs
            # see it (mask A), and the state at (r, c) sees row r's inputs only up to column c.
            blind = [8 * r - 1] if r > 0 and c + 3 < 7 else []
            assert (grad[:i] == 0).nonzero().flatten().tolist() == blind, f"pixel {i}"


@pytest.mark.parametrize(("model", "kind"), CACHED, ids=CACHED_IDS)
def test_fast_generate_equals_naive(model, kind):
    variant = build(model, kind)
    z = torch.randn(4, variant.z_dim, generator=torch.Generator().manual_seed(1))
    assert torch.equal(variant.generate(z), variant._generate_naive(z))


@pytest.mark.parametrize(("model", "kind"), CASES, ids=IDS)
def test_generate_is_a_function_of_z_that_inverts_the_full_pass_cdf(model, kind):
    variant = build(model, kind)
    perturb(variant)
    z = torch.randn(4, variant.z_dim, generator=torch.Generator().manual_seed(2))
    rng = torch.get_rng_state()
    x = variant.generate(z)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(x, variant.generate(z))
    assert x.shape == (4, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    # Pixel i's logits see only pixels before i, so one full pass over the finished sample gives
    # the logits each pixel was drawn from: a check of the sampler that does not rerun it.
    with torch.no_grad():
        logits = variant.G(x)
    u = uniforms(z).view(4, 8, 8)
    levels = to_levels(x, kind == "bernoulli")[:, 0]
    for r in range(8):
        for c in range(8):
            drawn = sample_with_uniforms(pixel(logits, r, c), u[:, r, c], kind)
            assert torch.equal(drawn, levels[:, r, c]), f"pixel ({r}, {c})"


@pytest.mark.parametrize(("model", "kind"), CACHED, ids=CACHED_IDS)
def test_sampling_step_logits_equal_the_full_pass_on_28x28(model, kind):
    # Logits, not samples: a crop one column too narrow moves them by ~1e-5, rarely a sample.
    variant = build(model, kind, size=28)
    perturb(variant)
    x, state, fast = images(kind, 2, 28), None, []
    with torch.no_grad():
        for r in range(28):
            for c in range(28):
                logits, state = variant._pixel_logits(x, r, c, state)
                fast.append(logits)
        full = variant.G(x)
    expected = [pixel(full, r, c) for r in range(28) for c in range(28)]
    torch.testing.assert_close(torch.stack(fast), torch.stack(expected), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("model", "kind"), CASES, ids=IDS)
def test_uniform_prediction_is_8_or_1_bits_per_dim(model, kind):
    variant = build(model, kind)
    with torch.no_grad():
        variant.G.head.out.weight.zero_()
        variant.G.head.out.bias.zero_()
    nats = variant.nll(images(kind, 3, 8), torch.Generator(), iwae_k=1)["nll_nats"]
    expected = 1.0 if kind == "bernoulli" else 8.0
    torch.testing.assert_close(bits_per_dim(nats, 64), torch.full((3,), expected))


@pytest.mark.parametrize(("model", "kind"), CASES, ids=IDS)
def test_nll_equals_the_likelihood_of_the_logits(model, kind):
    variant = build(model, kind)
    x = images(kind, 3, 8)
    levels = to_levels(x, kind == "bernoulli")
    logits = variant.G(x).detach()
    expected = (
        bernoulli_nll(logits, levels) if kind == "bernoulli" else categorical_nll(logits, levels)
    )
    nats = variant.nll(x, torch.Generator(), iwae_k=1)["nll_nats"]
    torch.testing.assert_close(nats, expected)


@pytest.mark.parametrize("model", MODELS)
def test_train_step_on_28x28(model):
    variant = build(model, "categorical", size=28)
    before = [p.detach().clone() for p in variant.G.parameters()]
    losses = variant.train_step(lambda: images("categorical", 8, 28))
    assert set(losses) == {"loss/nll"} and math.isfinite(losses["loss/nll"])
    assert any(not torch.equal(a, b) for a, b in zip(before, variant.G.parameters(), strict=True))


@pytest.mark.parametrize(("model", "kind"), CASES, ids=IDS)
def test_steps_lower_the_nll_of_a_fixed_batch(model, kind):
    variant = build(model, kind, lr=1e-2)
    x = images(kind, 16, 8)
    losses = [variant.train_step(lambda: x)["loss/nll"] for _ in range(5)]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_same_weights(model):
    def trained(seed: int) -> list[torch.Tensor]:
        variant = build(model, "categorical", seed=seed)
        for _ in range(2):
            variant.train_step(lambda: images("categorical", 4, 8))
        return list(variant.G.parameters())

    first, second, other = trained(0), trained(0), trained(1)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("model", [PixelCNN, PixelRNN], ids=["PixelCNN", "PixelRNN"])
def test_data_problem_names_the_fix(model):
    rgb = model.data_problem(DataSpec((3, 8, 8)))
    assert "one-channel" in rgb and "grayscale" in rgb
    cfg = model.Config(output="bernoulli")
    assert "'categorical' or 'auto'" in model.data_problem(DataSpec((1, 8, 8)), cfg)
    assert model.data_problem(DataSpec((1, 8, 8), binary=True), cfg) is None
    with pytest.raises(UsageError, match="one-channel"):
        model(model.Config(), DataSpec((3, 8, 8)), CPU)


def test_diagonal_bilstm_is_accepted():
    cfg = PixelRNN.Config(cell="diagonal_bilstm")
    assert PixelRNN.data_problem(DataSpec((1, 8, 8), binary=True), cfg) is None
