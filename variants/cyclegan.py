"""CycleGAN: Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017.

Two generators, G_AB: A → B and G_BA: B → A (Johnson et al.'s ResNet: a 7×7 stem, two stride-2
downsamplings, residual blocks, two upsamplings, instance normalisation, reflection padding), and
two PatchGAN discriminators, D_B on B images and D_A on A images, trained with the least-squares
GAN loss (section 4 of the paper; G's term is the MSE to the real label, D's is halved, as in
the authors' code). G's loss adds the cycle-consistency loss λ·(‖G_BA(G_AB(a)) − a‖₁
+ ‖G_AB(G_BA(b)) − b‖₁), λ = 10 (eq. 3), and optionally the identity loss of section 5.2
(‖G_BA(a) − a‖₁ + ‖G_AB(b) − b‖₁, weighted 0.5·λ as in the authors' code). Each D is updated on a
history of the last 50 generated images rather than only the newest (section 4), and its loss is
halved. Learning rates are constant for the first half of the budget, then fall linearly to 0.
`cycle_weight = 0` is the paper's "GAN alone" ablation (Table 4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from bench.datasets.base import DataSpec
from bench.registry import VARIANTS
from bench.variant import Betas, Variant, VariantConfig
from variants.losses import lsgan_discriminator_loss
from variants.nets import dcgan_init
from variants.schedules import linear_decay


class CycleGANConfig(VariantConfig):
    ngf: Annotated[int, Field(gt=0)] = (
        64  # width of G's stem; doubled at each downsampling (paper: 64)
    )
    ndf: Annotated[int, Field(gt=0)] = 64  # width of D's first layer (paper: 64)
    # Residual blocks in each G (paper: 9 at 256², 6 at 128²).
    n_blocks: Annotated[int, Field(ge=1)] = 9
    # D's stride-2 layers: 3 gives the paper's 70×70 patches; 1 gives 16×16 patches on 28² images.
    d_layers: Annotated[int, Field(ge=1)] = 3
    cycle_weight: Annotated[float, Field(ge=0)] = 10.0  # λ of eq. 3; 0 = "GAN alone" (Table 4)
    # Identity loss weight as a fraction of λ (authors' code: 0.5; the paper uses it for paintings).
    # Needs A and B with the same number of channels.
    identity_weight: Annotated[float, Field(ge=0)] = 0.5
    pool_size: Annotated[int, Field(ge=0)] = 50  # generated images each D learns from (section 4)
    lr: Annotated[float, Field(gt=0)] = 2e-4  # Adam step size (section 4)
    betas: Betas = [0.5, 0.999]  # Adam (β1, β2) (section 4)
    # Fraction of the budget after which learning rates fall linearly to 0 (paper: 100 + 100 epochs).
    lr_decay_from: Annotated[float, Field(ge=0, le=1)] = 0.5


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3), nn.InstanceNorm2d(width), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3), nn.InstanceNorm2d(width),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def resnet_generator(in_ch: int, out_ch: int, cfg: CycleGANConfig) -> nn.Sequential:
    """c7s1-64, d128, d256, R256 × n_blocks, u128, u64, c7s1-out (the paper's appendix)."""
    ngf = cfg.ngf
    return nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(),
        nn.Conv2d(ngf, 2 * ngf, 3, 2, 1), nn.InstanceNorm2d(2 * ngf), nn.ReLU(),
        nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1), nn.InstanceNorm2d(4 * ngf), nn.ReLU(),
        *[ResidualBlock(4 * ngf) for _ in range(cfg.n_blocks)],
        nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, 1, output_padding=1),
        nn.InstanceNorm2d(2 * ngf), nn.ReLU(),
        nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(ngf),
        nn.ReLU(),
        nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, 7), nn.Tanh(),
    )  # fmt: skip


def patch_discriminator(in_ch: int, cfg: CycleGANConfig) -> nn.Sequential:
    """PatchGAN with instance normalisation: C64-C128-..., stride 2 then 1, one score per patch."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, cfg.ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
    width = cfg.ndf
    for n in range(1, cfg.d_layers + 1):
        nxt = cfg.ndf * min(2**n, 8)
        layers += [nn.Conv2d(width, nxt, 4, 2 if n < cfg.d_layers else 1, 1),
                   nn.InstanceNorm2d(nxt), nn.LeakyReLU(0.2)]  # fmt: skip
        width = nxt
    layers.append(nn.Conv2d(width, 1, 4, 1, 1))
    return nn.Sequential(*layers)


class ImagePool(nn.Module):
    """The last `size` generated images (Shrivastava et al. 2017): once full, each new image is
    returned as it is or, with probability ½, swapped for a stored one that it replaces. Held in
    buffers, so checkpoints keep the history."""

    def __init__(self, size: int, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = batch.clone()
        for i, image in enumerate(batch):
            if self.count < self.size:  # filling up: keep it and use it
                self.images[self.count] = image
                self.count += 1
            elif torch.rand(()) < 0.5:  # use a stored one, and store this one in its place
                j = int(torch.randint(self.size, ()))
                out[i] = self.images[j].clone()
                self.images[j] = image
        return out


@VARIANTS.register("cyclegan")
class CycleGAN(Variant):
    family = "translation"
    paper = "Zhu et al. 2017, Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks"
    Config = CycleGANConfig
    capabilities = frozenset({"translates_unpaired", "critic"})  # critics D_A and D_B

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        # Two stride-2 stages down and two up return an image's size only when 4 divides it.
        if data.shape[-1] % 4 or data.shape[-2] % 4:
            return (
                f"the generators take sides divisible by 4, not {data.shape[-1]}×{data.shape[-2]}"
            )
        return None

    def __init__(self, cfg: CycleGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        ch_b, ch_a = data.shape[0], (data.source_shape or data.shape)[0]
        self.use_identity = cfg.identity_weight > 0 and ch_a == ch_b
        self.G_AB = resnet_generator(ch_a, ch_b, cfg).to(device)
        self.G_BA = resnet_generator(ch_b, ch_a, cfg).to(device)
        self.D_A = patch_discriminator(ch_a, cfg).to(device)
        self.D_B = patch_discriminator(ch_b, cfg).to(device)
        for net in (self.G_AB, self.G_BA, self.D_A, self.D_B):
            net.apply(dcgan_init)  # N(0, 0.02), the authors' default; no BatchNorm here
        self.pool_A = ImagePool(cfg.pool_size, data.source_shape or data.shape).to(device)
        self.pool_B = ImagePool(cfg.pool_size, data.shape).to(device)
        g_params = [*self.G_AB.parameters(), *self.G_BA.parameters()]
        d_params = [*self.D_A.parameters(), *self.D_B.parameters()]
        self.opt_G = torch.optim.Adam(g_params, lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_D = torch.optim.Adam(d_params, lr=cfg.lr, betas=tuple(cfg.betas))

    def set_budget(self, gen_steps: int) -> None:
        super().set_budget(gen_steps)
        self.sched_G = linear_decay(self.opt_G, gen_steps, self.cfg.lr_decay_from)
        self.sched_D = linear_decay(self.opt_D, gen_steps, self.cfg.lr_decay_from)

    @property
    def z_dim(self) -> int:
        return 0  # deterministic translators

    @torch.no_grad()
    def translate(self, source: torch.Tensor, direction: str = "A2B") -> torch.Tensor:
        return (self.G_AB if direction == "A2B" else self.G_BA)(source)

    def judge(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        """The patch scores of the critic of `domain` ("A" or "B")."""
        return (self.D_A if domain == "A" else self.D_B)(images)

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return lsgan_discriminator_loss(real_out, fake_out)

    def train_step(
        self, next_real: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        real_a, real_b = next_real()
        cfg = self.cfg

        # Generators: fool both Ds, come back on a round trip, and (optionally) leave a target-domain
        # image as it is. Ds are frozen for this update.
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        fake_b, fake_a = self.G_AB(real_a), self.G_BA(real_b)
        adversarial = _mse_to(self.D_B(fake_b), 1.0) + _mse_to(self.D_A(fake_a), 1.0)
        cycle = (self.G_BA(fake_b) - real_a).abs().mean() + (
            self.G_AB(fake_a) - real_b
        ).abs().mean()
        g_loss = adversarial + cfg.cycle_weight * cycle
        losses = {"loss/generator": adversarial.item(), "loss/cycle": cycle.item()}
        if self.use_identity:
            identity = (self.G_BA(real_a) - real_a).abs().mean() + (
                self.G_AB(real_b) - real_b
            ).abs().mean()
            g_loss = g_loss + cfg.identity_weight * cfg.cycle_weight * identity
            losses["loss/identity"] = identity.item()
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()

        # Discriminators: real images against the history of generated ones; each loss is
        # ½(MSE to 1 on real + MSE to 0 on generated), the authors' halving.
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        hist_a, hist_b = self.pool_A.query(fake_a.detach()), self.pool_B.query(fake_b.detach())
        d_a = lsgan_discriminator_loss(self.D_A(real_a), self.D_A(hist_a))
        d_b = lsgan_discriminator_loss(self.D_B(real_b), self.D_B(hist_b))
        self.opt_D.zero_grad(set_to_none=True)
        (d_a + d_b).backward()
        self.opt_D.step()
        self.step_schedulers()
        return {**losses, "loss/critic_A": d_a.item(), "loss/critic_B": d_b.item()}


def _mse_to(out: torch.Tensor, target: float) -> torch.Tensor:
    """G's least-squares loss as the authors' code computes it: MSE to the real label, no ½."""
    return ((out - target) ** 2).mean()
