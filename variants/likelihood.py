"""What the likelihood baselines (vae, pixelcnn, pixelrnn) share: the discrete likelihoods of 8-bit
and binarised images, sampling driven by the harness's latents, and the variant base class of a
model with a likelihood and no critic.

Images reach a variant as floats in [-1, 1]. An 8-bit image has 256 levels per pixel (level k is
k / 127.5 - 1); a binarised image (`DataSpec.binary`) has two, -1 and 1. Every negative
log-likelihood here is in nats per image, summed over its C·H·W dimensions; bits per dimension is
that divided by C·H·W·ln 2 (van den Oord et al. 2016, section 5.1).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from bench.datasets.base import DataSpec
from bench.variant import Variant

LEVELS = 256  # values of an 8-bit pixel
Output = Literal["auto", "bernoulli", "categorical"]


def output_kind(choice: Output, data: DataSpec) -> Literal["bernoulli", "categorical"]:
    """`auto` resolves to a Bernoulli per pixel on binarised data and a 256-way softmax otherwise."""
    if choice == "auto":
        return "bernoulli" if data.binary else "categorical"
    return choice


def output_problem(choice: Output, data: DataSpec) -> str | None:
    """Why output `choice` cannot model `data`, or None."""
    if len(data.shape) != 3:
        return f"models images (C, H, W), not samples of shape {data.shape}"
    if choice == "bernoulli" and not data.binary:
        return ("output 'bernoulli' needs binarised images (every pixel -1 or 1, such as "
                "mnist5k_bin); use 'categorical' or 'auto' for 8-bit images")  # fmt: skip
    return None


def to_levels(x: torch.Tensor, binary: bool) -> torch.Tensor:
    """Float images in [-1, 1] → int64 levels: 0 or 1 (binary), else 0..255."""
    if binary:
        return (x > 0).long()
    return x.add(1.0).mul(127.5).round().clamp(0, LEVELS - 1).long()


def from_levels(levels: torch.Tensor, binary: bool) -> torch.Tensor:
    """int64 levels → float images in [-1, 1]."""
    if binary:
        return levels.float() * 2 - 1
    return levels.float() / 127.5 - 1


def categorical_nll(logits: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Nats per image of `levels` [N, C, H, W] under per-pixel softmaxes `logits` [N, 256, C, H, W]."""
    return F.cross_entropy(logits, levels, reduction="none").flatten(1).sum(1)


def bernoulli_nll(logits: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Nats per image of `bits` [N, C, H, W] (0/1) under per-pixel Bernoulli `logits` [N, C, H, W]."""
    nll = F.binary_cross_entropy_with_logits(logits, bits.float(), reduction="none")
    return nll.flatten(1).sum(1)


def discretized_logistic_nll(
    mean: torch.Tensor, log_scale: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """Nats per image of 8-bit images `x` (floats in [-1, 1]) under a logistic per pixel with
    `mean` and `log_scale`, discretised to the 256 bins of width 2/255 (Kingma et al. 2016; Salimans
    et al. 2017, PixelCNN++): the mass of each pixel's bin, the edge bins taking the tails."""
    centred = x - mean
    inv_scale = torch.exp(-log_scale)
    upper = inv_scale * (centred + 1 / 255)
    lower = inv_scale * (centred - 1 / 255)
    log_cdf_upper = upper - F.softplus(upper)  # log σ(upper): the mass below the first bin's edge
    log_survival_lower = -F.softplus(lower)  # log(1 - σ(lower)): the mass above the last's
    mass = torch.sigmoid(upper) - torch.sigmoid(lower)
    # Where the bin's mass underflows, the density at its centre times the bin width.
    middle = inv_scale * centred
    log_density = middle - log_scale - 2 * F.softplus(middle) - math.log(127.5)
    log_mass = torch.where(mass > 1e-5, torch.log(mass.clamp_min(1e-12)), log_density)
    log_p = torch.where(x < -0.999, log_cdf_upper,
                        torch.where(x > 0.999, log_survival_lower, log_mass))  # fmt: skip
    return -log_p.flatten(1).sum(1)


def bits_per_dim(nats: torch.Tensor | float, dims: int) -> torch.Tensor | float:
    """Nats per image → bits per dimension."""
    return nats / (dims * math.log(2))


def sample_with_uniforms(
    logits: torch.Tensor, u: torch.Tensor, kind: Literal["bernoulli", "categorical"]
) -> torch.Tensor:
    """Levels drawn by inverse CDF from per-pixel distributions with uniforms `u` in (0, 1):
    `logits` [N, 256] (categorical) or [N] (Bernoulli) and `u` [N] give int64 levels [N]. Sampling
    is then a function of the uniforms, so the harness's fixed latents fix the samples."""
    if kind == "bernoulli":
        return (u < torch.sigmoid(logits)).long()
    cdf = torch.softmax(logits.double(), dim=1).cumsum(dim=1)
    return (cdf < u.double().unsqueeze(1)).sum(dim=1).clamp_max(logits.shape[1] - 1)


def uniforms(z: torch.Tensor) -> torch.Tensor:
    """Standard normal latents → uniforms in (0, 1) by the normal CDF, element by element."""
    return torch.special.ndtr(z)


class LikelihoodVariant(Variant):
    """A generative model with a likelihood on held-out images and no critic.

    Subclasses implement `train_step` (one optimiser step; returns its losses), `generate` (images
    from the harness's latents [N, z_dim], deterministic in them) and `nll`."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"samples", "likelihood"})
    # "exact" (autoregressive) or "bound" (an upper bound on the NLL: a VAE's importance-weighted
    # bound); stated in the results' notes.
    nll_kind: ClassVar[str] = "exact"

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no critic")

    def nll(
        self, x: torch.Tensor, generator: torch.Generator, iwae_k: int
    ) -> dict[str, torch.Tensor]:
        """Negative log-likelihood of held-out images `x` (floats in [-1, 1]) in nats per image:
        {"nll_nats": [N]}, exact for an autoregressive model; a latent-variable model gives its
        importance-weighted bound with `iwae_k` samples drawn from `generator` as "nll_nats" and its
        negative ELBO as "neg_elbo_nats"."""
        raise NotImplementedError
