"""LSGAN: Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017.

The sigmoid cross-entropy of the GAN is replaced by least squares on D's raw output (eq. 2):
D minimises ½E[(D(x) - b)²] + ½E[(D(G(z)) - a)²] and G minimises ½E[(D(G(z)) - c)²]. Samples that
are on the real side of the decision boundary but far from the data are still penalised, so G keeps
getting gradients where the sigmoid loss saturates. Of the paper's two codings the default is
a = 0, b = c = 1 (G wants its samples taken for real); a = -1, b = 1, c = 0 makes the objective a
Pearson χ² divergence (section 3.2). Optimiser as for DCGAN: Adam, lr 2e-4, β1 = 0.5.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import torch
from pydantic import Field

from bench.datasets.base import DataSpec
from bench.registry import VARIANTS
from bench.variant import Betas, Variant
from variants.losses import lsgan_discriminator_loss, lsgan_generator_loss
from variants.nets import ArchConfig, build_pair, resolve_arch


class LSGANConfig(ArchConfig):
    arch: Literal["mlp", "dcgan"] = "dcgan"  # the paper's image networks are DCGAN-like
    n_critic: Annotated[int, Field(gt=0)] = 1  # D steps per G step
    lr: Annotated[float, Field(gt=0)] = 2e-4  # Adam step size (section 4)
    betas: Betas = [0.5, 0.999]  # Adam (β1, β2), β1 = 0.5 as in the paper
    fake_target: float = 0.0  # a: the value D should give generated samples
    real_target: float = 1.0  # b: the value D should give real samples
    generator_target: float = 1.0  # c: the value G wants D to give its samples


@VARIANTS.register("lsgan")
class LSGAN(Variant):
    family = "least_squares"
    paper = "Mao et al. 2017, Least Squares Generative Adversarial Networks"
    Config = LSGANConfig

    def __init__(self, cfg: LSGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(resolve_arch(cfg, data), data, device)
        self.G, self.D = (m.to(device) for m in build_pair(self.cfg, data))
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return lsgan_discriminator_loss(
            real_out, fake_out, self.cfg.real_target, self.cfg.fake_target
        )

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        # Discriminator: regress real outputs to b and generated ones to a.
        self.D.requires_grad_(True)
        for _ in range(self.cfg.n_critic):
            real = next_real()
            z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
            d_loss = self.critic_loss(self.D(real), self.D(self.G(z).detach()))
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_D.step()

        # Generator: pull D's output on generated samples to c, against the frozen D.
        self.D.requires_grad_(False)
        z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
        g_loss = lsgan_generator_loss(self.D(self.G(z)), self.cfg.generator_target)
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        return {"loss/critic": d_loss.item(), "loss/generator": g_loss.item()}
