"""Perceptual path length (Karras, Laine & Aila, "A Style-Based Generator Architecture for
Generative Adversarial Networks", CVPR 2019, section 4.1).

For latent pairs (a, b) and t, the images at I(a, b, t) and I(a, b, t + ε) are compared, and the
distance divided by ε² is averaged after discarding values below the 1st and above the 99th
percentile. `ppl_z` interpolates z by slerp (on unit vectors), `ppl_w` interpolates mapped latents
w by lerp; sampling "full" draws t ~ U(0, 1), "end" takes t = 0 (what the official code's "end"
does). ε = 1e-4 by default, as in the paper.

The paper's distance is LPIPS on ImageNet VGG16, whose weights no package ships offline. Here the
distance is LPIPS-shaped in the domain classifier's layers (each layer's activations normalised
to unit length over channels, squared differences summed over channels, averaged over positions,
summed over layers, every layer weighted 1: LPIPS without its learned weights), and the column
carries that network's name (`ppl_w/lenet-mnist5k`). Values are comparable within this project
only, never with the paper's 412.0 / 234.0.

torchmetrics 1.9.0 has `perceptual_path_length` and takes a custom distance network, but it always
interpolates at t = 0 (the "end" sampling), so it cannot measure the paper's default "full" path
length; its slerp is also not the paper's. The maths below is short and is tested against
torchmetrics where both apply (lerp, t = 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bench.datasets.images import ImageDataset
from bench.metrics.images import ImageMetric, _not_direct
from bench.registry import METRICS

Sampling = Literal["full", "end"]


@dataclass(frozen=True)
class PathMetric(ImageMetric):
    """A path length computed by the generation task from the model itself (its latent space `space`),
    with distances in a backbone's layers; one column per backbone, like the image metrics."""

    space: str = "z"


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return a + (b - a) * t[:, None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between the directions of `a` and `b` (rows), unit-length output:
    the official code's `slerp`, which normalises both ends first."""
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    d = (a * b).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    angle = torch.acos(d) * t[:, None]
    c = b - d * a
    c = c / c.norm(dim=1, keepdim=True).clamp_min(1e-12)
    out = a * torch.cos(angle) + c * torch.sin(angle)
    return out / out.norm(dim=1, keepdim=True)


def path_distances(
    images: Callable[[torch.Tensor], torch.Tensor], distance: Callable[..., torch.Tensor],
    start: torch.Tensor, end: torch.Tensor, t: torch.Tensor, epsilon: float,
    interpolate: Callable[..., torch.Tensor], batch_size: int,
) -> torch.Tensor:  # fmt: skip
    """distance(images(I(a, b, t)), images(I(a, b, t + ε))) / ε² for each latent pair (a, b);
    both ends of a pair go through `images` in the same batch."""
    out = []
    for i in range(0, len(start), batch_size):
        a, b, ti = start[i : i + batch_size], end[i : i + batch_size], t[i : i + batch_size]
        pair = torch.cat([interpolate(a, b, ti), interpolate(a, b, ti + epsilon)])
        x = images(pair)
        out.append(distance(x[: len(a)], x[len(a) :]).flatten().double() / epsilon**2)
    return torch.cat(out)


def filtered_mean(distances: torch.Tensor, low: float = 1.0, high: float = 99.0) -> float:
    """Mean of the values between the `low`-th and `high`-th percentiles (both kept), percentiles
    taken at the nearest lower value, as the official code does."""
    d = distances.detach().cpu().numpy()
    lo, hi = np.percentile(d, [low, high], method="lower")
    return float(d[(d >= lo) & (d <= hi)].mean())


class LayerDistance(nn.Module):
    """LPIPS-shaped distance in a network's activations (every ReLU of the domain classifier's
    body), with every layer weighted 1; images in [-1, 1]. `per_channel`: each image channel is a
    grey image of its own (stacked MNIST) and the channels' distances add up."""

    def __init__(self, net: nn.Module, per_channel: bool = False) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.per_channel = per_channel
        self.layers = [m for m in self.net.body if isinstance(m, nn.ReLU)]

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        found: list[torch.Tensor] = []
        hooks = [
            m.register_forward_hook(lambda _m, _i, out: found.append(out)) for m in self.layers
        ]
        try:
            self.net(x)
        finally:
            for h in hooks:
                h.remove()
        return found

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        b, c = x0.shape[:2]
        if self.per_channel:
            x0, x1 = (x.reshape(b * c, 1, *x.shape[2:]) for x in (x0, x1))
        total = torch.zeros(len(x0), dtype=torch.float64, device=x0.device)
        for f0, f1 in zip(self.activations(x0), self.activations(x1), strict=True):
            f0, f1 = (f.double() for f in (f0, f1))
            n0 = f0 / (f0.norm(dim=1, keepdim=True) + 1e-10)
            n1 = f1 / (f1.norm(dim=1, keepdim=True) + 1e-10)
            diff = (n0 - n1).square().sum(dim=1)  # over channels
            total += diff.flatten(1).mean(dim=1) if diff.dim() > 1 else diff
        return total.reshape(b, c).sum(dim=1) if self.per_channel else total


def images_along(variant: Any, space: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The map from latents of `space` to images that a path is measured through. A style-based
    generator (one with `synthesise`) runs with its fixed noise images, as the official code does
    (`randomize_noise=False`), and W latents drive every layer. Any other generator gets the
    interpolated unit z scaled to √dim, the typical length of its N(0, I) latents."""
    if hasattr(variant, "synthesise"):

        def from_w(w: torch.Tensor) -> torch.Tensor:
            return variant.synthesise(w[:, None].expand(-1, variant.num_ws, -1), noise="const")

        return from_w if space == "w" else (lambda z: from_w(variant.map(z)))
    return lambda z: variant.generate(z * math.sqrt(z.shape[1]))


class PathLengths:
    """A cell's path-length columns: latent pairs and positions t drawn once from the cell's eval
    stream, distances in each backbone the suite measures in (the domain classifier's layers; no
    other backbone has a distance here, and its column says so)."""

    def __init__(
        self, variant: Any, dataset: ImageDataset, metrics: list[PathMetric],
        eval_cfg: dict[str, Any], cache_dir: Path, device: torch.device, gen: torch.Generator,
    ) -> None:  # fmt: skip
        from bench import backbones
        from bench.backbones import domain

        n = eval_cfg["ppl_samples"]
        self.metrics, self.device, self.batch_size = metrics, device, eval_cfg["batch_size"]
        self.epsilon = eval_cfg["ppl_epsilon"]
        self.z = torch.randn(2, n, variant.z_dim, generator=gen)
        full = eval_cfg["ppl_sampling"] == "full"
        self.t = torch.rand(n, generator=gen) if full else torch.zeros(n)
        self.distances: list[tuple[str, LayerDistance | None]] = []
        for kind in eval_cfg["backbones"]:
            bb = backbones.resolve(kind, dataset, cache_dir, eval_cfg["inception_weights"])
            if kind != "domain":
                self.distances.append((bb.name, None))
                continue
            with torch.random.fork_rng(devices=[]):  # building LeNet draws initial weights
                net = domain.load_lenet(bb.weights)
            self.distances.append(
                (bb.name, LayerDistance(net, dataset.per_channel_classifier).to(device))
            )

    @torch.no_grad()
    def __call__(self, variant: Any) -> tuple[dict[str, float], list[str]]:
        row: dict[str, float] = {}
        notes: list[str] = []
        for metric in self.metrics:
            why = self._not_measurable(variant, metric)
            for name, distance in self.distances:
                column = f"{metric.name}/{name}"
                if why or distance is None:
                    row[column] = float("nan")
                    notes.append(f"{column}: " + (why or "path lengths are measured in the domain "
                                 "classifier's layers only (the paper's LPIPS/VGG16 weights are "
                                 "not available offline)"))  # fmt: skip
                    continue
                row[column] = filtered_mean(self._distances(variant, metric.space, distance))
        return row, notes

    @staticmethod
    def _not_measurable(variant: Any, metric: PathMetric) -> str:
        if variant.conditional:
            return f"{type(variant).__name__} is conditional; path lengths here are unconditional"
        if metric.space == "w" and not getattr(variant, "has_mapping", False):
            return (f"{type(variant).__name__} (this config) has no mapping network, so it has no "
                    "W distinct from Z: see ppl_z")  # fmt: skip
        return ""

    def _distances(self, variant: Any, space: str, distance: LayerDistance) -> torch.Tensor:
        z0, z1 = (z.to(self.device) for z in self.z)
        t = self.t.to(self.device)
        images = images_along(variant, space)
        if space == "w":
            start, end = (torch.cat([variant.map(c) for c in z.split(self.batch_size)])
                          for z in (z0, z1))  # fmt: skip
            return path_distances(images, distance, start, end, t, self.epsilon, lerp,
                                  self.batch_size)  # fmt: skip
        return path_distances(images, distance, z0, z1, t, self.epsilon, slerp, self.batch_size)


PATH_METRICS = [
    PathMetric("ppl_z", _not_direct, False, "perceptual path length in Z (slerp), in the domain "
               "classifier's layers (Karras et al. 2019; the paper's LPIPS/VGG16 is not offline)",
               ("generation",), columns=(("ppl_z", False),), space="z"),
    PathMetric("ppl_w", _not_direct, False, "perceptual path length in W (lerp of mapped latents), "
               "for a style-based generator with a mapping network", ("generation",),
               columns=(("ppl_w", False),), space="w"),
]  # fmt: skip
for _metric in PATH_METRICS:
    METRICS.add(_metric.name, _metric)
