"""SRResNet: the generator of Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network", CVPR 2017, trained alone with the pixel-wise MSE (section 2.2).

G (Figure 4, top) maps a low-resolution image to one `scale` times larger: a 9×9 convolution and
PReLU, B residual blocks (conv3×3-BN-PReLU-conv3×3-BN plus the block's input), a conv3×3-BN whose
output is added to the first convolution's (the long skip), log2(scale) sub-pixel stages (conv3×3
to 4× the width, PixelShuffle(2) after Shi et al. 2016, PReLU) and a 9×9 convolution to the image's
channels. A Tanh maps the output to [-1, 1], the range the harness keeps HR images in (the paper
scales HR images to [-1, 1] too). This file's G is the one SRGAN (variants/srgan.py) starts from.
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


class SRResNetConfig(VariantConfig):
    # Residual blocks in G (paper: 16).
    n_blocks: Annotated[int, Field(ge=1)] = 16
    # Channels of every feature map in G before the sub-pixel stages (paper: 64).
    width: Annotated[int, Field(gt=0)] = 64
    # Adam step size (paper: 10⁻⁴ for the 10⁶ SRResNet updates).
    lr: Annotated[float, Field(gt=0)] = 1e-4
    # Adam (β1, β2): the paper gives β1 = 0.9; β2 is Adam's default.
    betas: Betas = [0.9, 0.999]


def upscaling_problem(data: DataSpec) -> str | None:
    """Why G cannot map `data`'s LR images to its HR images (a power-of-two scale ≥ 2, the same in
    both sides, is what the sub-pixel stages can make), or None."""
    if data.source_shape is None:
        return "super-resolution needs paired data: low-resolution sources (source_shape) and HR images"
    (_, lr_h, lr_w), (_, hr_h, hr_w) = data.source_shape, data.shape
    scale = hr_w // lr_w
    if scale < 2 or scale & (scale - 1) or (hr_h, hr_w) != (lr_h * scale, lr_w * scale):
        return (
            f"SRResNet's sub-pixel stages upscale by a power of two ≥ 2 in both sides; "
            f"{lr_h}×{lr_w} → {hr_h}×{hr_w} is not such a scale"
        )
    return None


class ResidualBlock(nn.Module):
    """conv3×3-BN-PReLU-conv3×3-BN, added to its input (He et al. 2016, as in Figure 4)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.PReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNetGenerator(nn.Module):
    """LR image [B, in_channels, h, w] → HR image [B, out_channels, scale·h, scale·w] in [-1, 1].

    PyTorch's default initialisation (the paper names none), drawn from torch's global generator,
    so a seed fixes it."""

    def __init__(
        self, in_channels: int, out_channels: int, scale: int, n_blocks: int, width: int
    ) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(in_channels, width, 9, padding=4), nn.PReLU())
        self.body = nn.Sequential(
            *[ResidualBlock(width) for _ in range(n_blocks)],
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )
        # Each sub-pixel stage computes 4 maps per output map at the low resolution and
        # interleaves them into one map of twice the side (Shi et al. 2016).
        upsample: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            upsample += [nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.PReLU()]
        self.upsample = nn.Sequential(*upsample)
        self.tail = nn.Sequential(nn.Conv2d(width, out_channels, 9, padding=4), nn.Tanh())

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        h = self.head(lr)
        h = h + self.body(h)  # the long skip: the blocks learn a residual of the first features
        return self.tail(self.upsample(h))


def build_generator(data: DataSpec, n_blocks: int, width: int) -> SRResNetGenerator:
    """SRResNet's G for `data` (checked by `upscaling_problem`): LR source → HR image."""
    scale = data.shape[-1] // data.source_shape[-1]
    return SRResNetGenerator(data.source_shape[0], data.shape[0], scale, n_blocks, width)


@VARIANTS.register("srresnet")
class SRResNet(Variant):
    family = "superres"
    paper = "Ledig et al. 2017, Photo-Realistic Single Image Super-Resolution Using a GAN, SRResNet"
    Config = SRResNetConfig
    capabilities = frozenset({"upscales"})

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        return upscaling_problem(data)

    def __init__(self, cfg: SRResNetConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.G = build_generator(data, cfg.n_blocks, cfg.width).to(device)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    @property
    def z_dim(self) -> int:
        return 0  # no latent: the LR image is G's only input

    @torch.no_grad()
    def translate(self, source: torch.Tensor) -> torch.Tensor:
        return self.G(source)

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("SRResNet has no critic")

    def train_step(
        self, next_real: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        # The pixel-wise MSE to the HR image (section 2.2.1): the PSNR-optimal, over-smooth solution.
        lr, hr = next_real()
        mse = F.mse_loss(self.G(lr), hr)
        self.opt_G.zero_grad(set_to_none=True)
        mse.backward()
        self.opt_G.step()
        self.step_schedulers()
        return {"loss/mse": mse.item()}
