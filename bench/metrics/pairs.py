"""Metrics of paired translation: each output is compared with the target it should have been.

Pix2Pix (Isola et al., CVPR 2017) reports per-pixel scores beside its perceptual studies; the
maths here is torchmetrics' (PSNR, SSIM with its 11×11 Gaussian window, σ = 1.5). Images are
scaled to [0, 1] first, so L1 is the mean absolute difference in that range, PSNR is in dB with a
peak of 1, and both PSNR and SSIM are averaged over images (not computed on the pooled batch).

Super-resolution papers (SRGAN, Ledig et al., CVPR 2017, section 4.1) measure PSNR and SSIM on the
Y channel of YCbCr with `scale` pixels cropped from each border: `psnr_y` and `ssim_y`. Y is ITU-R
BT.601's luma with MATLAB's `rgb2ycbcr` offsets, (16 + 65.481 R + 128.553 G + 24.966 B) / 255 for R,
G, B in [0, 1], the conversion those papers' evaluation scripts use; a grey image is its own Y.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.errors import UsageError
from bench.metrics.base import Metric, NotApplicable
from bench.registry import METRICS

PAIRED = ("paired_translation", "super_resolution")
SUPER_RESOLUTION = ("super_resolution",)
# ITU-R BT.601 luma for R, G, B in [0, 1], with MATLAB rgb2ycbcr's offset: Y in [16, 235] / 255.
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


@dataclass(frozen=True)
class PairMetric(Metric):
    """A named function of (outputs, targets), both float in [-1, 1] with the same shape → float."""

    score: Callable[[torch.Tensor, torch.Tensor], float] | None = None
    y_channel: bool = False  # scored on luma (Y of YCbCr) only, with a border cropped

    def bind(self, eval_cfg: dict[str, Any], device: torch.device) -> PairMetric:
        """The metric as one evaluation uses it (a metric with a network loads it here)."""
        return self

    def pairs(self, outputs: torch.Tensor, targets: torch.Tensor, border: int = 0) -> float:
        """The score of `outputs` against `targets`; a `y_channel` metric crops `border` pixels
        from every side first (super-resolution: the scale factor)."""
        _same_shape(outputs, targets)
        assert self.score is not None
        out, tgt = _unit(outputs), _unit(targets)
        if self.y_channel:
            out, tgt = luma(crop_border(out, border)), luma(crop_border(tgt, border))
        return float(self.score(out, tgt))


@dataclass(frozen=True)
class LpipsMetric(PairMetric):
    """LPIPS (Zhang et al., CVPR 2018), version 0.1 on AlexNet, by torchmetrics: its linear layers
    ship with torchmetrics, the AlexNet ImageNet weights come from `eval.lpips_weights`. Images
    under 64×64 (the patch size LPIPS was calibrated on) are upsampled bilinearly to 64×64 first,
    since AlexNet's pooling leaves nothing of a 28×28 image; grey images are repeated to RGB."""

    net: Any = None  # the bound network (see `bind`); None until then, or without weights
    missing: str = "not bound to an evaluation's settings"

    def bind(self, eval_cfg: dict[str, Any], device: torch.device) -> LpipsMetric:
        path = eval_cfg.get("lpips_weights")
        if not path:
            return replace(self, missing="needs AlexNet's ImageNet weights (no package ships them "
                           "offline): set eval.lpips_weights to torchvision's alexnet state dict")  # fmt: skip
        return replace(self, net=lpips_network(Path(path)).to(device))

    def pairs(self, outputs: torch.Tensor, targets: torch.Tensor, border: int = 0) -> float:
        if self.net is None:
            raise NotApplicable(self.missing)
        _same_shape(outputs, targets)
        device = next(self.net.parameters()).device
        scores = [self.net(*(_lpips_input(x.to(device)) for x in pair)).flatten()
                  for pair in zip(outputs.split(LPIPS_BATCH), targets.split(LPIPS_BATCH), strict=True)]  # fmt: skip
        return float(torch.cat(scores).double().mean())


def _same_shape(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    if outputs.shape != targets.shape:
        raise NotApplicable(f"outputs {tuple(outputs.shape)} and targets "
                            f"{tuple(targets.shape)} differ in shape")  # fmt: skip


LPIPS_BATCH = 64
LPIPS_SIDE = 64


def _lpips_input(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images as LPIPS takes them: float32 RGB, at least 64×64."""
    x = images.float().clamp(-1, 1)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if min(x.shape[-2:]) < LPIPS_SIDE:
        x = F.interpolate(x, size=(LPIPS_SIDE, LPIPS_SIDE), mode="bilinear", align_corners=False)
    return x


def lpips_network(path: Path) -> torch.nn.Module:
    """torchmetrics' LPIPS (AlexNet, v0.1) with AlexNet's convolutions loaded from the torchvision
    state dict at `path` (torchmetrics itself would download them)."""
    from torchmetrics.functional.image.lpips import _LPIPS

    if not path.is_file():
        raise UsageError(f"eval.lpips_weights: no file at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    with torch.random.fork_rng(devices=[]):  # the random AlexNet is overwritten below
        net = _LPIPS(pretrained=True, net="alex", pnet_rand=True)
    # torchmetrics splits AlexNet's `features` into slices whose modules keep their indices.
    convs = {name.rsplit(".", 1)[-1]: m for name, m in net.net.named_modules()
             if isinstance(m, torch.nn.Conv2d)}  # fmt: skip
    for index, conv in convs.items():
        for kind in ("weight", "bias"):
            key = f"features.{index}.{kind}"
            if key not in state or state[key].shape != getattr(conv, kind).shape:
                raise UsageError(f"eval.lpips_weights: {path} is not torchvision's AlexNet state "
                                 f"dict (no {key} of shape {tuple(getattr(conv, kind).shape)})")  # fmt: skip
            getattr(conv, kind).data.copy_(state[key])
    return net.eval().requires_grad_(False)


def crop_border(images: torch.Tensor, border: int) -> torch.Tensor:
    """[N, C, H, W] without `border` pixels on each side."""
    if border == 0:
        return images
    if 2 * border >= min(images.shape[-2:]):
        raise NotApplicable(f"a {border}-pixel border leaves nothing of "
                            f"{images.shape[-1]}×{images.shape[-2]} images")  # fmt: skip
    return images[..., border:-border, border:-border]


def luma(images: torch.Tensor) -> torch.Tensor:
    """Y of YCbCr (`Y_WEIGHTS`, `Y_OFFSET`) of RGB images in [0, 1], as [N, 1, H, W] in [0, 1];
    grey images are returned as they are."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(Y_WEIGHTS, dtype=images.dtype).view(1, 3, 1, 1)
    return ((images * weights).sum(1, keepdim=True) + Y_OFFSET) / 255.0


def _unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1], float64 so the averages do not depend on the chunking of the sum."""
    return images.detach().double().add(1.0).div(2.0).clamp(0.0, 1.0).cpu()


def _not_sample_metric(*_: object) -> float:
    raise NotApplicable("a paired metric compares outputs with their targets, not two sample sets")


def mean_l1(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float((outputs - targets).abs().mean())


def mean_psnr(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    from torchmetrics.functional.image import peak_signal_noise_ratio

    per_image = peak_signal_noise_ratio(
        outputs, targets, data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    return float(per_image.mean())


SSIM_CHUNK = 16  # images per torchmetrics SSIM call


def mean_ssim(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over images of each image's SSIM, computed a few images at a time: torchmetrics'
    Gaussian-window convolution unfolds every pixel's 11×11 window, and 600 48×48 images at once
    took 4.4 GB."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    per_image = [
        structural_similarity_index_measure(o, t, data_range=1.0, reduction="none")
        for o, t in zip(outputs.split(SSIM_CHUNK), targets.split(SSIM_CHUNK), strict=True)
    ]
    return float(torch.cat(per_image).mean())


PAIR_METRICS = [
    PairMetric("l1", _not_sample_metric, False, "mean absolute difference from the target, images "
               "in [0, 1]", PAIRED, score=mean_l1),
    PairMetric("psnr", _not_sample_metric, True, "peak signal-to-noise ratio to the target in dB, "
               "mean over images (torchmetrics)", PAIRED, score=mean_psnr),
    PairMetric("ssim", _not_sample_metric, True, "structural similarity to the target, Gaussian "
               "11×11 window, mean over images (torchmetrics)", PAIRED, score=mean_ssim),
    PairMetric("psnr_y", _not_sample_metric, True, "PSNR to the HR image in dB on the Y channel, "
               "`scale` border pixels cropped (the SR papers' protocol; torchmetrics)",
               SUPER_RESOLUTION, score=mean_psnr, y_channel=True),
    PairMetric("ssim_y", _not_sample_metric, True, "SSIM to the HR image on the Y channel, `scale` "
               "border pixels cropped (the SR papers' protocol; torchmetrics)", SUPER_RESOLUTION,
               score=mean_ssim, y_channel=True),
    LpipsMetric("lpips_alex", _not_sample_metric, False, "LPIPS v0.1 distance to the target on "
                "AlexNet (torchmetrics; AlexNet's ImageNet weights from eval.lpips_weights)",
                PAIRED),
]  # fmt: skip
for _metric in PAIR_METRICS:
    METRICS.add(_metric.name, _metric)

# Unpaired translation has no targets; how well a round trip returns its input is CycleGAN's own
# measure (its cycle-consistency loss). Filled by the task per direction: `cycle_l1/A2B2A`.
METRICS.add("cycle_l1", Metric(
    "cycle_l1", _not_sample_metric, False, "mean absolute difference between an image and its "
    "round trip through both translators, images in [0, 1]", ("unpaired_translation",),
))  # fmt: skip
