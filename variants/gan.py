"""The original GAN: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.

A discriminator D is trained to tell real from generated samples with the logistic loss; the
generator is trained with the non-saturating loss -log D(G(z)) by default (section 3 of the paper),
or the minimax loss log(1 - D(G(z))) if selected. Networks: by default WGAN-GP's toy MLPs on points
and the paper's MLP shape on images (see variants/nets.py), so that only the loss differs from wgan
and wgan_gp on the same `arch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import torch
from pydantic import Field

from bench.datasets.base import DataSpec
from bench.registry import VARIANTS
from bench.variant import Betas, Variant
from variants.losses import (
    gan_discriminator_loss,
    gan_generator_loss_minimax,
    gan_generator_loss_nonsaturating,
)
from variants.nets import ArchConfig, build_pair, resolve_arch


class GANConfig(ArchConfig):
    # k in Algorithm 1 of the paper: discriminator steps per generator step; the paper used k = 1.
    n_critic: Annotated[int, Field(gt=0)] = 1
    lr: Annotated[float, Field(gt=0)] = 1e-4  # Adam step size, as WGAN-GP's toy code uses for all
    betas: Betas = [0.5, 0.9]  # Adam (β1, β2) of WGAN-GP's toy code
    # "nonsaturating": G minimises -log D(G(z)); "minimax": G minimises log(1 - D(G(z))).
    generator_loss: Literal["nonsaturating", "minimax"] = "nonsaturating"


@VARIANTS.register("gan")
class GAN(Variant):
    family = "gan"
    paper = "Goodfellow et al. 2014, Generative Adversarial Nets"
    Config = GANConfig

    def __init__(self, cfg: GANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(resolve_arch(cfg, data), data, device)
        self.G, self.D = (m.to(device) for m in build_pair(self.cfg, data))
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.g_loss = (
            gan_generator_loss_nonsaturating
            if cfg.generator_loss == "nonsaturating"
            else gan_generator_loss_minimax
        )

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return gan_discriminator_loss(real_out, fake_out)

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        # Discriminator: k steps of the logistic loss on fresh real and generated batches.
        self.D.requires_grad_(True)
        for _ in range(self.cfg.n_critic):
            real = next_real()
            z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
            d_loss = self.critic_loss(self.D(real), self.D(self.G(z).detach()))
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_D.step()

        # Generator: one step; D is frozen so no gradients are computed for it.
        self.D.requires_grad_(False)
        z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
        g_loss = self.g_loss(self.D(self.G(z)))
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        return {"loss/critic": d_loss.item(), "loss/generator": g_loss.item()}
