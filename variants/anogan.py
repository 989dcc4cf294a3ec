"""AnoGAN: Schlegl et al., "Unsupervised Anomaly Detection with Generative Adversarial Networks to
Guide Marker Discovery", IPMI 2017.

A DCGAN (variants/dcgan.py, trained unchanged) learns the variety of normal images only; the
harness's `next_real()` gives it nothing else. An image x is then scored by searching for the
latent whose generated image is closest to it (section 2.2): z starts from N(0, I) and takes Γ
gradient steps on

    L(z) = (1 - λ)·R(z) + λ·Dis(z),   R(z) = Σ|x - G(z)|,   Dis(z) = Σ|f(x) - f(G(z))|,

where f is D's last hidden activation (the paper's "improved discrimination loss": feature matching
after Salimans et al. 2016, in place of D's output alone) and λ = 0.1. The anomaly score is L at
the last step: an image G cannot reproduce, in pixels or in D's features, lies off the manifold of
normal images. G and D stay frozen throughout; only the latents move.

Each sum is over one image, and the latents are drawn one image at a time, so every image's latent
follows its own path (Adam is elementwise): a score does not depend on the images scored with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import VariantConfig
from variants.dcgan import DCGAN, DCGANConfig
from variants.nets import dcgan_critic_features, dcgan_problem


class AnoGANConfig(DCGANConfig):
    # Dis(z) reads D's last hidden feature map, which the DCGAN critic is built to give.
    arch: Literal["dcgan"] = "dcgan"
    # Γ, gradient steps of the latent search for each image (the paper: 500).
    search_steps: Annotated[int, Field(ge=0)] = 500
    # Step size of the search. The paper says only that z is found by backpropagation and names no
    # optimiser or settings: Adam at 0.01 (β = 0.9, 0.999) is the harness's choice.
    search_lr: Annotated[float, Field(gt=0)] = 0.01
    # λ, the weight of the discrimination loss against the residual loss (the paper: 0.1).
    lam: Annotated[float, Field(ge=0, le=1)] = 0.1


@contextmanager
def frozen(*nets: nn.Module) -> Iterator[None]:
    """`nets` with no parameter requiring gradients, and afterwards every flag as it was."""
    params = [p for net in nets for p in net.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


@VARIANTS.register("anogan")
class AnoGAN(DCGAN):
    family = "anomaly"
    paper = "Schlegl et al. 2017, Unsupervised Anomaly Detection with GANs (AnoGAN)"
    Config = AnoGANConfig
    capabilities = frozenset({"scores_anomalies", "critic"})

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        return dcgan_problem(data)

    def __init__(self, cfg: AnoGANConfig, data: DataSpec, device: torch.device) -> None:
        if problem := dcgan_problem(data):
            raise UsageError(f"anogan: {problem}")
        super().__init__(cfg, data, device)

    def search_loss(
        self, x: torch.Tensor, x_features: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """L(z) of each image [N]: (1 - λ)·Σ|x - G(z)| + λ·Σ|f(x) - f(G(z))|."""
        fake = self.G(z)
        residual = (x - fake).abs().flatten(1).sum(1)
        discrimination = (x_features - dcgan_critic_features(self.D, fake)).abs().sum(1)
        return (1 - self.cfg.lam) * residual + self.cfg.lam * discrimination

    def anomaly_scores(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # One latent per image, drawn in image order: the same image gets the same start however
        # the harness splits its images into chunks (a batched draw would not: torch's normal
        # sampler transforms blocks of 16 numbers, so its first rows depend on how many follow).
        z = torch.stack([torch.randn(self.z_dim, generator=generator) for _ in range(len(x))])
        z = z.to(self.device).requires_grad_(True)
        search = torch.optim.Adam([z], lr=self.cfg.search_lr)
        with frozen(self.G, self.D), torch.enable_grad():
            with torch.no_grad():
                x_features = dcgan_critic_features(self.D, x)
            for _ in range(self.cfg.search_steps):
                loss = self.search_loss(x, x_features, z)
                search.zero_grad(set_to_none=True)
                # Summed, so each latent receives the gradient of its own image's loss only.
                loss.sum().backward()
                search.step()
            with torch.no_grad():
                return self.search_loss(x, x_features, z).float().cpu()
