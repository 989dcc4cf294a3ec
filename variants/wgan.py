"""WGAN with weight clipping: Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017.

The critic maximises E[D(x)] - E[D(G(z))]; to keep it (roughly) 1-Lipschitz every critic weight and
bias is clipped to [-c, c] after each critic step (Algorithm 1: RMSProp, lr 5e-5, c = 0.01,
n_critic = 5). -critic loss is the critic's estimate of the Wasserstein-1 distance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
from pydantic import Field

from bench.datasets.base import DataSpec
from bench.registry import VARIANTS
from bench.variant import Variant
from variants.losses import wasserstein_critic_loss, wasserstein_generator_loss
from variants.nets import ArchConfig, build_pair, resolve_arch


class WGANConfig(ArchConfig):
    n_critic: Annotated[int, Field(gt=0)] = 5  # critic steps per generator step (Algorithm 1)
    lr: Annotated[float, Field(gt=0)] = (
        5e-5  # RMSProp step size (Algorithm 1); momentum-free on purpose
    )
    clip_value: Annotated[float, Field(gt=0)] = 0.01  # c: critic parameters are clipped to [-c, c]


@VARIANTS.register("wgan")
class WGAN(Variant):
    family = "wasserstein"
    paper = "Arjovsky et al. 2017, Wasserstein GAN"
    Config = WGANConfig
    estimates_wasserstein = True

    def __init__(self, cfg: WGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(resolve_arch(cfg, data), data, device)
        self.G, self.D = (m.to(device) for m in build_pair(self.cfg, data))
        self.opt_G = torch.optim.RMSprop(self.G.parameters(), lr=cfg.lr)
        self.opt_D = torch.optim.RMSprop(self.D.parameters(), lr=cfg.lr)
        self.clip_critic()  # the constraint holds from the first step on

    def clip_critic(self) -> None:
        with torch.no_grad():
            for p in self.D.parameters():
                p.clamp_(-self.cfg.clip_value, self.cfg.clip_value)

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return wasserstein_critic_loss(real_out, fake_out)

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        # Critic: n_critic steps, each followed by clipping every parameter to [-c, c].
        self.D.requires_grad_(True)
        for _ in range(self.cfg.n_critic):
            real = next_real()
            z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
            d_loss = self.critic_loss(self.D(real), self.D(self.G(z).detach()))
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_D.step()
            self.clip_critic()

        # Generator: one step against the frozen critic.
        self.D.requires_grad_(False)
        z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
        g_loss = wasserstein_generator_loss(self.D(self.G(z)))
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        return {"loss/critic": d_loss.item(), "loss/generator": g_loss.item()}
