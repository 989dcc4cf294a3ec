"""WGAN-GP: Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.

Instead of clipping, the critic's gradient norm is pushed towards 1 at random points between real
and generated samples: loss = E[D(G(z))] - E[D(x)] + λ·E[(‖∇D(x̂)‖ - 1)²] (Algorithm 1: λ = 10,
Adam lr 1e-4, β = (0, 0.9), n_critic = 5). The toy experiments (gan_toy.py) used λ = 0.1 and
β = (0.5, 0.9); suites on toy data set those. The penalty is per sample, so the critic must not
use batch norm (section 4 of the paper); `d_norm` here allows only "none" or "layer".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import torch
from pydantic import Field

from bench.datasets.base import DataSpec
from bench.registry import VARIANTS
from bench.variant import Betas, Variant
from variants.losses import gradient_penalty, wasserstein_critic_loss, wasserstein_generator_loss
from variants.nets import ArchConfig, build_pair, resolve_arch


class WGANGPConfig(ArchConfig):
    n_critic: Annotated[int, Field(gt=0)] = 5  # critic steps per generator step (Algorithm 1)
    lr: Annotated[float, Field(gt=0)] = 1e-4  # Adam step size (Algorithm 1)
    betas: Betas = [0.0, 0.9]  # Adam (β1, β2) of Algorithm 1
    gp_weight: Annotated[float, Field(ge=0)] = 10.0  # λ, weight of the gradient penalty
    # Batch norm would make each sample's gradient depend on the rest of the batch, which the
    # per-sample penalty assumes it does not. "none": the critics of the authors' gan_toy.py,
    # gan_mnist.py and gan_cifar.py; "layer": the drop-in the paper recommends.
    d_norm: Literal["layer", "none"] = "none"


@VARIANTS.register("wgan_gp")
class WGANGP(Variant):
    family = "wasserstein"
    paper = "Gulrajani et al. 2017, Improved Training of Wasserstein GANs"
    Config = WGANGPConfig
    estimates_wasserstein = True

    def __init__(self, cfg: WGANGPConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(resolve_arch(cfg, data), data, device)
        self.G, self.D = (m.to(device) for m in build_pair(self.cfg, data))
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return wasserstein_critic_loss(real_out, fake_out)

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        # Critic: n_critic steps of the Wasserstein loss plus λ times the gradient penalty.
        self.D.requires_grad_(True)
        for _ in range(self.cfg.n_critic):
            real = next_real()
            z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
            fake = self.G(z).detach()
            alpha = torch.rand(len(real), *([1] * (real.dim() - 1)), device=self.device)
            w_loss = self.critic_loss(self.D(real), self.D(fake))
            penalty = gradient_penalty(self.D, real, fake, alpha)
            d_loss = w_loss + self.cfg.gp_weight * penalty
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_D.step()

        # Generator: one step against the frozen critic.
        self.D.requires_grad_(False)
        z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
        g_loss = wasserstein_generator_loss(self.D(self.G(z)))
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        return {
            "loss/critic": w_loss.item(),
            "loss/gradient_penalty": penalty.item(),
            "loss/generator": g_loss.item(),
        }
