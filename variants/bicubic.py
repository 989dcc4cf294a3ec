"""Bicubic interpolation: the reference row of every super-resolution table, here as in Ledig et
al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
CVPR 2017 (Table 2, "bicubic").

Nothing is learned: a training step does nothing, and `translate` upsamples the LR image with
bicubic interpolation (Keys 1981, a = -0.75 in PyTorch) and clips the overshoot of its negative
lobes back into the images' range [-1, 1]. Run under the same budget and evaluation as the GANs,
it gives the floor a learned model has to beat.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from bench.datasets.base import DataSpec
from bench.registry import VARIANTS
from bench.variant import Variant, VariantConfig


class BicubicConfig(VariantConfig):
    pass  # nothing to choose: the interpolation kernel is fixed


@VARIANTS.register("bicubic")
class Bicubic(Variant):
    family = "superres"
    paper = "Ledig et al. 2017, Photo-Realistic Single Image Super-Resolution Using a GAN, bicubic"
    Config = BicubicConfig
    capabilities = frozenset({"upscales"})

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        if data.source_shape is None:
            return "super-resolution needs paired data: low-resolution sources (source_shape) and HR images"
        (lr_c, lr_h, lr_w), (hr_c, hr_h, hr_w) = data.source_shape, data.shape
        if lr_c != hr_c:
            return f"interpolation keeps the channels: {lr_c} in the sources, {hr_c} in the images"
        if hr_h % lr_h or hr_w % lr_w or hr_h // lr_h != hr_w // lr_w:
            return (
                f"bicubic upscaling needs one integer scale in both sides; "
                f"{lr_h}×{lr_w} → {hr_h}×{hr_w} has none"
            )
        return None

    def __init__(self, cfg: BicubicConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.scale = data.shape[-1] // data.source_shape[-1]

    @property
    def z_dim(self) -> int:
        return 0  # no latent, no networks

    @torch.no_grad()
    def translate(self, source: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(source, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return up.clamp(-1.0, 1.0)

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("bicubic interpolation has no critic")

    def train_step(
        self, next_real: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        return {}  # nothing to learn, so no batch is drawn
