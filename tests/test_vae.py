"""The VAE (variants/vae.py): its importance-weighted bound against the ELBO, training for both
decoders, sampling, and the discretised logistic it shares with the other likelihood models."""

import math

import pytest
import torch

from bench.datasets.base import DataSpec
from bench.seeding import seed_everything
from variants.likelihood import LEVELS, discretized_logistic_nll, from_levels
from variants.vae import VAE, VAEConfig, latent_uniforms

CPU = torch.device("cpu")
GREY = DataSpec((1, 28, 28))
BINARY = DataSpec((1, 28, 28), binary=True)
SMALL = {"ngf": 8, "ndf": 8, "z_dim": 16}  # narrow networks keep the file at a few seconds
DECODERS = {"logistic": GREY, "bernoulli": BINARY}


def build(decoder: str = "logistic", seed: int = 0, **overrides) -> VAE:
    seed_everything(seed, CPU)
    cfg = VAEConfig.model_validate({**SMALL, "decoder": decoder, **overrides})
    return VAE(cfg, DECODERS[decoder], CPU)


def images(data: DataSpec, n: int, seed: int = 0) -> torch.Tensor:
    """`n` images on the data's levels, from a seeded generator of their own."""
    g = torch.Generator().manual_seed(seed)
    if data.binary:
        return (torch.rand(n, *data.shape, generator=g) > 0.5).float() * 2 - 1
    return from_levels(torch.randint(LEVELS, (n, *data.shape), generator=g), False)


@pytest.mark.parametrize("decoder", DECODERS)
def test_bound_with_one_sample_is_the_elbo_on_the_same_noise(decoder):
    vae, x = build(decoder), images(DECODERS[decoder], 8)
    bound = vae.nll(x, torch.Generator().manual_seed(5), iwae_k=1)["nll_nats"]

    # The ELBO's Monte Carlo form, -log p(x|z) + log q(z|x) - log p(z), at the bound's z.
    eps = torch.randn(1, 8, vae.z_dim, generator=torch.Generator().manual_seed(5))[0]
    with torch.no_grad():
        mean, log_var = vae.encode(x)
        std = (0.5 * log_var).exp()
        z = mean + std * eps
        log_q = torch.distributions.Normal(mean, std).log_prob(z).sum(1)
        log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
        neg_elbo = vae.decoder_nll(vae.G(z), x) + log_q - log_p
    torch.testing.assert_close(bound, neg_elbo, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("decoder", DECODERS)
def test_bound_with_one_sample_averages_to_the_analytic_kl_elbo(decoder):
    vae, n = build(decoder), 4000
    x = images(DECODERS[decoder], 1).expand(n, -1, -1, -1)  # one image, n independent draws each
    out = vae.nll(x, torch.Generator().manual_seed(1), iwae_k=1)
    bound, neg_elbo = out["nll_nats"], out["neg_elbo_nats"]
    stderr = math.sqrt((bound.var() + neg_elbo.var()).item() / n)
    assert abs(bound.mean() - neg_elbo.mean()).item() < 4 * stderr


@pytest.mark.parametrize("decoder", DECODERS)
def test_bound_tightens_with_more_samples(decoder):
    vae, x = build(decoder), images(DECODERS[decoder], 64)
    g = torch.Generator().manual_seed(2)
    one, fifty = (vae.nll(x, g, iwae_k=k)["nll_nats"].mean() for k in (1, 50))
    assert fifty < one


def test_nll_is_deterministic_and_leaves_the_global_generator_alone():
    vae, x = build(), images(GREY, 300)  # two batches of the bound
    state = torch.get_rng_state()
    first = vae.nll(x, torch.Generator().manual_seed(3), iwae_k=4)
    second = vae.nll(x, torch.Generator().manual_seed(3), iwae_k=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert first["nll_nats"].shape == first["neg_elbo_nats"].shape == (300,)
    for key in first:
        assert torch.equal(first[key], second[key])


@pytest.mark.parametrize("decoder", DECODERS)
def test_training_step(decoder):
    vae, x = build(decoder), images(DECODERS[decoder], 16)
    before = [p.clone() for p in [*vae.E.parameters(), *vae.G.parameters()]]
    losses = vae.train_step(lambda: x)
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["loss/neg_elbo"] == pytest.approx(losses["loss/recon"] + losses["loss/kl"])
    after = [*vae.E.parameters(), *vae.G.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("decoder", DECODERS)
def test_training_lowers_the_negative_elbo_of_a_fixed_batch(decoder):
    vae, x = build(decoder), images(DECODERS[decoder], 16)

    def neg_elbo() -> float:
        return vae.nll(x, torch.Generator().manual_seed(4), iwae_k=1)["neg_elbo_nats"].mean().item()

    start = neg_elbo()
    for _ in range(30):
        vae.train_step(lambda: x)
    assert neg_elbo() < start


@pytest.mark.parametrize("decoder", DECODERS)
def test_same_seed_gives_the_same_weights(decoder):
    def trained() -> dict[str, torch.Tensor]:
        vae, x = build(decoder, seed=7), images(DECODERS[decoder], 16)
        for _ in range(2):
            vae.train_step(lambda: x)
        return {**vae.E.state_dict(), **{f"G.{k}": v for k, v in vae.G.state_dict().items()}}

    first, second = trained(), trained()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("sample", ["mean", "sample"])
def test_generate_is_in_range_and_deterministic_in_z(decoder, sample):
    vae = build(decoder, sample=sample)
    z = torch.randn(6, vae.z_dim, generator=torch.Generator().manual_seed(0))
    x = vae.generate(z)
    assert x.shape == (6, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, vae.generate(z))


def test_sampling_noise_depends_on_its_own_latent_only():
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    u = latent_uniforms(z, (1, 28, 28))
    assert u.shape == (6, 1, 28, 28) and 0 < u.min() and u.max() < 1
    assert torch.equal(u[2:4], latent_uniforms(z[2:4], (1, 28, 28)))
    assert not torch.equal(u[0], u[1])


@pytest.mark.parametrize("mean,log_scale", [(0.0, 0.0), (0.3, -3.0), (-0.95, -5.0), (0.99, -7.0)])
def test_discretized_logistic_sums_to_one_over_the_levels(mean, log_scale):
    x = from_levels(torch.arange(LEVELS), False).view(LEVELS, 1, 1, 1)
    nll = discretized_logistic_nll(torch.full_like(x, mean), torch.full_like(x, log_scale), x)
    assert nll.neg().exp().sum().item() == pytest.approx(1.0, abs=1e-4)


def test_data_problem_refuses_what_it_cannot_model():
    assert "images" in VAE.data_problem(DataSpec((2,)))
    assert "side" in VAE.data_problem(DataSpec((1, 7, 7)))
    bernoulli = VAEConfig(decoder="bernoulli")
    problem = VAE.data_problem(GREY, bernoulli)
    assert "binarised" in problem and "'logistic'" in problem
    assert VAE.data_problem(BINARY, bernoulli) is None
    assert VAE.data_problem(GREY) is None and VAE.data_problem(BINARY) is None
