"""VAE: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; its likelihood bound from
Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.

An encoder gives a diagonal Gaussian q(z|x); a decoder gives p(x|z); the prior is p(z) = N(0, I),
the harness's latents. Training minimises the negative ELBO, E_q[-log p(x|z)] + KL(q(z|x) || p(z)),
with one reparameterised sample z = μ + σ·ε and the KL in closed form (the paper's equation 10).
The held-out NLL is the importance-weighted bound -log (1/k) Σ_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x),
which is the negative ELBO at k = 1 and tightens as k grows (Burda et al., Theorem 1).

Networks, matched in size to `arch = "dcgan"` of variants/nets.py: the encoder is the DCGAN critic
(`ndf`, without normalisation) whose last convolution gives 2·z_dim values, q's mean and
log-variance; the decoder is the DCGAN generator (`ngf`, `z_dim`) whose last transposed convolution
gives p(x|z)'s parameters instead of a Tanh image. Neither has batch norm, so that an image's
likelihood does not depend on the other images of its batch; the decoder has biases in its place,
and both keep PyTorch's default initialisation (DCGAN's N(0, 0.02) relied on batch norm).
Decoder likelihoods: a Bernoulli per pixel on binarised images (the paper's MNIST model) or, on 8-bit
images, a logistic per pixel discretised to the 256 levels (Kingma et al. 2016, IAF), with a mean
bounded to [-1, 1] by tanh and a log-scale of its own per pixel.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import Betas, VariantConfig
from variants.likelihood import (
    LikelihoodVariant,
    bernoulli_nll,
    discretized_logistic_nll,
    from_levels,
    output_problem,
    sample_with_uniforms,
    to_levels,
)
from variants.nets import ArchConfig, dcgan_critic, dcgan_stages

# Lower bound on the logistic's log-scale, as PixelCNN++'s code: e^-7 ≈ 0.001 is a quarter of a
# level's half-width (1/255), so a pixel can put up to 97% of its mass on one level.
MIN_LOG_SCALE = -7.0
# A batch of the bound holds at most 200 images and decodes at most 4096 latents (iwae_k per image):
# on a CPU, the 20,000 latents of 200 images at k = 100 doubled the process's peak memory (2.5 GB).
NLL_IMAGES, NLL_LATENTS = 200, 4096


class VAEConfig(VariantConfig):
    # Latent size: DCGAN's 100, so the decoder matches the DCGAN generator (Burda et al. used 50).
    z_dim: Annotated[int, Field(gt=0)] = 100
    # Channels of the decoder's last hidden map and the encoder's first, doubling at each halving
    # of the side: nets.py's DCGAN defaults.
    ngf: Annotated[int, Field(gt=0)] = 32
    ndf: Annotated[int, Field(gt=0)] = 32
    # Adam, as Burda et al. trained both bounds; Kingma & Welling used Adagrad.
    lr: Annotated[float, Field(gt=0)] = 1e-3
    betas: Betas = [0.9, 0.999]  # Adam (β1, β2) of Burda et al.
    # p(x|z): "auto" picks "bernoulli" on binarised images and "logistic" otherwise.
    decoder: Literal["auto", "bernoulli", "logistic"] = "auto"
    # What `generate` returns: the decoder's mean image, or a draw from p(x|z) whose noise is
    # seeded by a hash of its latent (so a latent always gives the same image).
    sample: Literal["mean", "sample"] = "mean"


def build_encoder(cfg: VAEConfig, shape: tuple[int, ...]) -> nn.Sequential:
    """x → [N, 2·z_dim]: DCGAN's critic without normalisation, its logit widened to q's parameters."""
    arch = ArchConfig(arch="dcgan", z_dim=cfg.z_dim, ndf=cfg.ndf, d_norm="none")
    net = dcgan_critic(arch, shape, 0)
    last = net[-2]  # the convolution over the whole smallest map
    net[-2] = nn.Conv2d(last.in_channels, 2 * cfg.z_dim, last.kernel_size)
    return net


def build_decoder(cfg: VAEConfig, shape: tuple[int, ...], out_channels: int) -> nn.Sequential:
    """z → [N, out_channels, H, W]: DCGAN's generator with biases in place of batch norm and linear
    outputs in place of its Tanh image."""
    stages, base = dcgan_stages(shape)
    channels = cfg.ngf * 2 ** (stages - 1)
    layers: list[nn.Module] = [
        nn.Linear(cfg.z_dim, channels * base * base),
        nn.Unflatten(1, (channels, base, base)),
        nn.ReLU(),
    ]
    for _ in range(stages - 1):  # each stage doubles the side and halves the channels
        layers += [nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1), nn.ReLU()]
        channels //= 2
    layers.append(nn.ConvTranspose2d(channels, out_channels, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag(exp(log_var))) || N(0, I)) in nats, summed over the last dimension."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(-1)


def standard_normal_log_prob(eps: torch.Tensor) -> torch.Tensor:
    """log N(eps; 0, I), summed over the last dimension."""
    return -0.5 * (eps.square() + math.log(2 * math.pi)).sum(-1)


def latent_uniforms(z: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniforms in (0, 1) of `shape` for each latent in `z` [N, z_dim], from a generator seeded by
    a hash of that latent alone: the same latent gives the same noise in any batch."""
    u = []
    for row in z.detach().float().cpu():
        seed = int.from_bytes(hashlib.sha256(row.numpy().tobytes()).digest()[:8], "little")
        u.append(torch.rand(shape, generator=torch.Generator().manual_seed(seed)))
    return torch.stack(u).to(z.device).clamp(1e-6, 1 - 1e-6)


@VARIANTS.register("vae")
class VAE(LikelihoodVariant):
    family = "vae"
    paper = "Kingma & Welling 2014, Auto-Encoding Variational Bayes (bound: Burda et al. 2016)"
    Config = VAEConfig
    nll_kind = "bound"

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        cfg = cfg or cls.Config()
        if problem := output_problem("auto", data):
            return problem
        try:
            dcgan_stages(data.shape)
        except UsageError as e:
            return str(e)
        if cfg.decoder == "bernoulli" and not data.binary:
            return ("decoder 'bernoulli' needs binarised images (every pixel -1 or 1, such as "
                    "mnist5k_bin); use 'logistic' or 'auto' for 8-bit images")  # fmt: skip
        return None

    def __init__(self, cfg: VAEConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        if cfg.decoder == "auto":
            self.decoder = "bernoulli" if data.binary else "logistic"
        else:
            self.decoder = cfg.decoder
        channels = data.shape[0]
        # Bernoulli: one logit per pixel; logistic: a mean and a log-scale per pixel.
        out_channels = channels if self.decoder == "bernoulli" else 2 * channels
        self.E = build_encoder(cfg, data.shape).to(device)
        self.G = build_decoder(cfg, data.shape, out_channels).to(device)
        params = [*self.E.parameters(), *self.G.parameters()]
        self.opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x)'s mean and log-variance, each [N, z_dim]."""
        mean, log_var = self.E(x).chunk(2, dim=1)
        return mean, log_var

    def decoder_nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) in nats per image [N], from the decoder's outputs `out` for images `x`."""
        if self.decoder == "bernoulli":
            return bernoulli_nll(out, to_levels(x, True))
        mean, log_scale = out.chunk(2, dim=1)
        x = from_levels(to_levels(x, False), False)  # on the bins' centres
        return discretized_logistic_nll(mean.tanh(), log_scale.clamp_min(MIN_LOG_SCALE), x)

    def neg_elbo(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction -log p(x|z) with z = μ + σ·eps, analytic KL(q(z|x) || p(z))), each in
        nats per image [N]; their sum is the negative ELBO."""
        mean, log_var = self.encode(x)
        z = mean + (0.5 * log_var).exp() * eps
        return self.decoder_nll(self.G(z), x), gaussian_kl(mean, log_var)

    def log_weights(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """log p(x, z) - log q(z|x) [k, N] at z = μ + σ·eps for standard normal `eps` [k, N, z_dim]."""
        k, n = eps.shape[:2]
        mean, log_var = self.encode(x)
        z = mean + (0.5 * log_var).exp() * eps
        x_k = x.expand(k, *x.shape).flatten(0, 1)
        log_px_z = -self.decoder_nll(self.G(z.flatten(0, 1)), x_k).view(k, n)
        # q(z|x) = N(z; μ, σ²): its log-density is that of eps less the log of the Jacobian σ.
        log_qz_x = standard_normal_log_prob(eps) - 0.5 * log_var.sum(-1)
        return log_px_z + standard_normal_log_prob(z) - log_qz_x

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        x = next_real()
        recon, kl = self.neg_elbo(x, torch.randn(len(x), self.z_dim, device=self.device))
        loss = (recon + kl).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {
            "loss/neg_elbo": loss.item(),
            "loss/kl": kl.mean().item(),
            "loss/recon": recon.mean().item(),
        }

    @torch.no_grad()
    def nll(
        self, x: torch.Tensor, generator: torch.Generator, iwae_k: int
    ) -> dict[str, torch.Tensor]:
        # All noise is drawn on the CPU from `generator`, batch by batch: the k latents of the
        # bound, then one for the ELBO's reconstruction term.
        bounds, neg_elbos = [], []
        batch_size = min(NLL_IMAGES, max(1, NLL_LATENTS // iwae_k))
        for batch in x.to(self.device).split(batch_size):
            eps = torch.randn(iwae_k, len(batch), self.z_dim, generator=generator)
            log_w = self.log_weights(batch, eps.to(self.device))
            bounds.append(math.log(iwae_k) - log_w.logsumexp(0))
            eps = torch.randn(len(batch), self.z_dim, generator=generator)
            recon, kl = self.neg_elbo(batch, eps.to(self.device))
            neg_elbos.append(recon + kl)
        return {"nll_nats": torch.cat(bounds), "neg_elbo_nats": torch.cat(neg_elbos)}

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        out = self.G(z)
        if self.decoder == "bernoulli":
            if self.cfg.sample == "mean":
                return out.sigmoid() * 2 - 1
            bits = sample_with_uniforms(out, latent_uniforms(z, out.shape[1:]), "bernoulli")
            return from_levels(bits, True)
        mean, log_scale = out.chunk(2, dim=1)
        if self.cfg.sample == "mean":
            return mean.tanh()
        # Inverse CDF of the logistic, then rounded to its level: the edge levels take the tails.
        u = latent_uniforms(z, mean.shape[1:])
        x = mean.tanh() + log_scale.clamp_min(MIN_LOG_SCALE).exp() * (u.log() - (-u).log1p())
        return from_levels(to_levels(x, False), False)
