"""Pix2Pix: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR 2017.

G is a U-Net: an encoder down to 1×1 and a decoder back up, each decoder stage concatenated with
the encoder stage of the same size (skip connections), dropout in the first decoder stages (kept on
at test time, the paper's only noise source). D is a PatchGAN: a fully convolutional classifier of
overlapping patches of the (source, image) pair, its scores averaged. G's loss is the conditional
GAN loss plus λ·L1 to the target (eq. 4, λ = 100); D's loss is halved (section 3.3). The paper's
Table 1 ablation is two fields: `gan_weight = 0` is "L1 alone", `l1_weight = 0` is "cGAN alone".

Images whose side is not a power of two (28×28 digits) are padded to the next one for the U-Net
(with -1, the background) and cropped back, so the bottleneck is 1×1 as in the paper's 256² net.
As in the authors' code, both learning rates stay constant for the first half of the budget and
then fall linearly towards 0 (`lr_decay_from`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bench.datasets.base import DataSpec
from bench.registry import VARIANTS
from bench.variant import Betas, Variant, VariantConfig
from variants.losses import gan_discriminator_loss, gan_generator_loss_nonsaturating
from variants.nets import dcgan_init
from variants.schedules import linear_decay


class Pix2PixConfig(VariantConfig):
    # Width of G's first encoder stage; stages double up to 8× (paper: 64; suites here use 16).
    ngf: Annotated[int, Field(gt=0)] = 64
    # Width of D's first layer (paper: 64).
    ndf: Annotated[int, Field(gt=0)] = 64
    # D's stride-2 layers: 3 gives the paper's 70×70 patches on 256² images; 1 gives 16×16 patches,
    # the same fraction of a 32² (padded 28²) image as 70 is of 256.
    d_layers: Annotated[int, Field(ge=1)] = 3
    # Dropout probability in the first `dropout_stages` decoder stages (paper: 0.5 in the first 3).
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.5
    dropout_stages: Annotated[int, Field(ge=0)] = 3
    l1_weight: Annotated[float, Field(ge=0)] = 100.0  # λ of eq. 4; 0 = "cGAN alone" of Table 1
    gan_weight: Annotated[float, Field(ge=0)] = (
        1.0  # weight of G's adversarial loss; 0 = "L1 alone"
    )
    lr: Annotated[float, Field(gt=0)] = 2e-4  # Adam step size (section 3.3)
    # Fraction of the budget after which both learning rates fall linearly to 0 (the authors'
    # code: 100 epochs constant, then 100 of decay, i.e. 0.5); 1.0 keeps them constant.
    lr_decay_from: Annotated[float, Field(ge=0, le=1)] = 0.5
    betas: Betas = [0.5, 0.999]  # Adam (β1, β2) (section 3.3)


class UNet(nn.Module):
    """U-Net of `depth` stride-2 stages from `size`² down to 1×1 (Isola et al., section 3.2.1)."""

    def __init__(self, in_ch: int, out_ch: int, size: int, cfg: Pix2PixConfig) -> None:
        super().__init__()
        self.size, self.padded = size, 2 ** math.ceil(math.log2(size))
        depth = int(math.log2(self.padded))
        widths = [cfg.ngf * min(2**i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        for i, width in enumerate(widths):  # C64-C128-C256-C512-C512-...: LeakyReLU, no BN at ends
            first, innermost = i == 0, i == depth - 1
            self.down.append(nn.Sequential(
                *([] if first else [nn.LeakyReLU(0.2)]),
                nn.Conv2d(in_ch if first else widths[i - 1], width, 4, 2, 1, bias=first or innermost),
                *([] if first or innermost else [nn.BatchNorm2d(width)]),
            ))  # fmt: skip
        self.up = nn.ModuleList()
        for j, i in enumerate(
            reversed(range(depth))
        ):  # decoder, innermost first: ReLU, BN, dropout
            outermost = i == 0
            in_width = widths[i] * (1 if i == depth - 1 else 2)  # skip concatenation doubles it
            out_width = out_ch if outermost else widths[i - 1]
            self.up.append(nn.Sequential(
                nn.ReLU(),
                nn.ConvTranspose2d(in_width, out_width, 4, 2, 1, bias=outermost),
                *([nn.Tanh()] if outermost else [nn.BatchNorm2d(out_width)]),
                *([nn.Dropout(cfg.dropout)] if j < cfg.dropout_stages and not outermost else []),
            ))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.padded - self.size
        h = F.pad(x, (0, pad, 0, pad), value=-1.0) if pad else x
        skips = []
        for stage in self.down:
            h = stage(h)
            skips.append(h)
        skips.pop()  # the bottleneck itself has no partner
        for stage in self.up:
            h = stage(h)
            if skips:
                h = torch.cat([h, skips.pop()], 1)
        return h[..., : self.size, : self.size]


def patch_discriminator(in_ch: int, cfg: Pix2PixConfig) -> nn.Sequential:
    """PatchGAN (section 3.2.2): C64-C128-... with stride 2, then stride 1, then 1 score per patch."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, cfg.ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
    width = cfg.ndf
    for n in range(1, cfg.d_layers + 1):
        nxt = cfg.ndf * min(2**n, 8)
        stride = 2 if n < cfg.d_layers else 1
        layers += [nn.Conv2d(width, nxt, 4, stride, 1, bias=False), nn.BatchNorm2d(nxt),
                   nn.LeakyReLU(0.2)]  # fmt: skip
        width = nxt
    layers.append(nn.Conv2d(width, 1, 4, 1, 1))
    return nn.Sequential(*layers)


@VARIANTS.register("pix2pix")
class Pix2Pix(Variant):
    family = "translation"
    paper = "Isola et al. 2017, Image-to-Image Translation with Conditional Adversarial Networks"
    Config = Pix2PixConfig
    capabilities = frozenset({"translates", "critic"})
    # "At inference time, we run the generator net in exactly the same manner as during the training
    # phase ... we apply dropout at test time" (section 3.2): dropout is G's noise.
    dropout_at_test = True

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        if data.shape[-1] != data.shape[-2]:
            return f"the U-Net takes square images, not {data.shape[-1]}×{data.shape[-2]}"
        return None

    def __init__(self, cfg: Pix2PixConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        channels, size = data.shape[0], data.shape[-1]
        src_channels = data.source_shape[0] if data.source_shape else channels
        self.G = UNet(src_channels, channels, size, cfg).to(device)
        self.D = patch_discriminator(src_channels + channels, cfg).to(device)
        for net in (self.G, self.D):
            net.apply(dcgan_init)  # N(0, 0.02), as the authors' code
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    def set_budget(self, gen_steps: int) -> None:
        super().set_budget(gen_steps)
        self.sched_G = linear_decay(self.opt_G, gen_steps, self.cfg.lr_decay_from)
        self.sched_D = linear_decay(self.opt_D, gen_steps, self.cfg.lr_decay_from)

    @property
    def z_dim(self) -> int:
        return 0  # no latent: dropout is G's only noise

    @torch.no_grad()
    def translate(self, source: torch.Tensor) -> torch.Tensor:
        return self.G(source)

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's patch scores for image `x` given its source image (passed as `labels`)."""
        if labels is None:
            raise ValueError("pix2pix's D judges pairs: critic(image, source) needs the source")
        return self.D(torch.cat([labels, x], 1))

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return 0.5 * gan_discriminator_loss(real_out, fake_out)  # halved: D learns slower than G

    def train_step(
        self, next_real: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        source, target = next_real()
        fake = self.G(source)

        # D: real pairs (source, target) against (source, G(source)).
        self.D.requires_grad_(True)
        d_loss = self.critic_loss(self.critic(target, source), self.critic(fake.detach(), source))
        self.opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_D.step()

        # G: fool D on the pair, and stay near the target in L1 (eq. 4).
        self.D.requires_grad_(False)
        adversarial = gan_generator_loss_nonsaturating(self.critic(fake, source))
        l1 = (fake - target).abs().mean()
        g_loss = self.cfg.gan_weight * adversarial + self.cfg.l1_weight * l1
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        self.step_schedulers()
        return {"loss/critic": d_loss.item(), "loss/generator": adversarial.item(),
                "loss/l1": l1.item()}  # fmt: skip
