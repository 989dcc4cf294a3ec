"""Conditional GAN: Mirza & Osindero, "Conditional Generative Adversarial Nets", arXiv 2014.

Both players see the class label y: G(z, y) and D(x, y), trained with the GAN's logistic loss
(eq. 2 of the paper) and the non-saturating generator loss. Labels enter as one-hot vectors,
concatenated to z for G and to the sample for D (appended as constant channels for a conv D; see
variants/nets.py). The paper's MNIST networks are MLPs, hence `arch = "mlp"` by default; its
optimiser (SGD with momentum and decaying step sizes) is replaced by DCGAN's Adam.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
from pydantic import Field

from bench.datasets.base import DataSpec
from bench.registry import VARIANTS
from bench.variant import Betas, Variant
from variants.losses import gan_discriminator_loss, gan_generator_loss_nonsaturating
from variants.nets import ArchConfig, build_pair, resolve_arch


class CGANConfig(ArchConfig):
    n_critic: Annotated[int, Field(gt=0)] = (
        1  # D steps per G step (Algorithm 1 of Goodfellow: k = 1)
    )
    lr: Annotated[float, Field(gt=0)] = 2e-4  # Adam step size, as DCGAN
    betas: Betas = [0.5, 0.999]  # Adam (β1, β2), as DCGAN


@VARIANTS.register("cgan")
class CGAN(Variant):
    family = "gan"
    paper = "Mirza & Osindero 2014, Conditional Generative Adversarial Nets"
    Config = CGANConfig
    conditional = True

    def __init__(self, cfg: CGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(resolve_arch(cfg, data), data, device)
        self.G, self.D = (m.to(device) for m in build_pair(self.cfg, data, conditional=True))
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise ValueError("cgan is conditional: generate(z, labels) needs the labels")
        return self.G(z, labels)

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise ValueError("cgan is conditional: critic(x, labels) needs the labels")
        return self.D(x, labels)

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return gan_discriminator_loss(real_out, fake_out)

    def train_step(
        self, next_real: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        # Discriminator: real pairs (x, y) against generated pairs (G(z, y), y). Fakes take the
        # real batch's labels, so D compares like with like and y follows the data's class mix.
        self.D.requires_grad_(True)
        for _ in range(self.cfg.n_critic):
            real, labels = next_real()
            z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
            fake = self.G(z, labels).detach()
            d_loss = self.critic_loss(self.D(real, labels), self.D(fake, labels))
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_D.step()

        # Generator: one step on the last batch's labels, D frozen.
        self.D.requires_grad_(False)
        z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
        g_loss = gan_generator_loss_nonsaturating(self.D(self.G(z, labels), labels))
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        return {"loss/critic": d_loss.item(), "loss/generator": g_loss.item()}
