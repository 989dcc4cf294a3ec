"""PixelCNN: van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016.

An image's likelihood is the product of one conditional per pixel in raster order (equation 1),
each a 256-way softmax over the pixel's levels (section 2.2) or, on binarised images, a Bernoulli.
The PixelCNN computes every conditional at once with masked convolutions (section 3.4): a 7×7
convolution with mask A (a pixel does not see itself), residual blocks around a 3×3 convolution
with mask B (a feature sees its own position), two 1×1 output layers (Table 1; Figure 5). Only
one-channel images are modelled: the paper's R → G → B channel masks are not implemented.

Sampling is sequential, one pixel at a time; pixel (r, c) sees only input rows r−R..r and columns
c−R..c+R (R: the stack's reach), so each step runs the stack on that crop of the canvas, not on
the whole image. Measured with the default config on one thread of a 2-core CPU, batch 64:
0.045 s per 28×28 image (both outputs), where 784 full passes would take ~1 s (categorical) or
~0.8 s (Bernoulli); a training step on 64 such images takes 0.38 s (categorical) or 0.16 s.

`Autoregressive` holds what this file shares with variants/pixelrnn.py: the data checks, the
training step, the exact NLL and the pixel-by-pixel sampling loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import Betas, VariantConfig
from variants.likelihood import (
    LEVELS,
    LikelihoodVariant,
    Output,
    bernoulli_nll,
    categorical_nll,
    from_levels,
    output_kind,
    output_problem,
    sample_with_uniforms,
    to_levels,
    uniforms,
)

NLL_BATCH = 500  # images per forward pass when computing held-out likelihoods

# Logits of one pixel for all images ([N, 256] or [N]) from the canvas, the pixel's row and column
# and a model's sampling state (None for the PixelCNN; cached row states for the PixelRNN).
PixelLogits = Callable[[torch.Tensor, int, int, Any], tuple[torch.Tensor, Any]]


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel sees only positions before its centre in raster order (mask A)
    or the centre too (mask B); 'same' padding. One colour channel, so no channel masks."""

    def __init__(
        self, mask: Literal["A", "B"], in_ch: int, out_ch: int, kernel: int | tuple[int, int]
    ) -> None:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        super().__init__(in_ch, out_ch, (kh, kw), padding=(kh // 2, kw // 2))
        keep = torch.ones(kh, kw)
        keep[kh // 2, kw // 2 + (mask == "B") :] = 0  # the centre (mask A) and right of it
        keep[kh // 2 + 1 :] = 0  # the rows below
        self.register_buffer("mask", keep, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class OutputHead(nn.Module):
    """ReLU, 1×1 conv, ReLU, 1×1 conv to the per-pixel logits (Table 1's output layers):
    features [N, width, H, W] → [N, 256, 1, H, W] (categorical) or [N, 1, H, W] (Bernoulli)."""

    def __init__(self, width: int, kind: Literal["bernoulli", "categorical"]) -> None:
        super().__init__()
        self.kind = kind
        self.hidden = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, LEVELS if kind == "categorical" else 1, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.out(F.relu(self.hidden(F.relu(h))))
        return logits.unsqueeze(2) if self.kind == "categorical" else logits


def pixel(logits: torch.Tensor, r: int, c: int) -> torch.Tensor:
    """The logits of pixel (r, c) from a map of them: [N, 256] (categorical) or [N] (Bernoulli)."""
    return logits[:, :, 0, r, c] if logits.dim() == 5 else logits[:, 0, r, c]


class ResidualBlock(nn.Module):
    """Figure 5's PixelCNN block: ReLU, 1×1 conv 2h → h, ReLU, 3×3 conv with mask B, ReLU, 1×1 conv
    h → 2h, added to the input; it lets the stack grow deep (section 3.5)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        h = channels // 2
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, h, 1),
            nn.ReLU(), MaskedConv2d("B", h, h, 3),
            nn.ReLU(), nn.Conv2d(h, channels, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PixelCNNNet(nn.Module):
    """Image [N, 1, H, W] in [-1, 1] → logits of every pixel given the pixels before it."""

    def __init__(self, channels: int, n_layers: int, kind: Literal["bernoulli", "categorical"]):
        super().__init__()
        self.input = MaskedConv2d("A", 1, channels, 7)
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(n_layers)])
        self.head = OutputHead(channels, kind)
        # Rows above (and columns either side) that an output can see: 3 for the 7×7 convolution,
        # 1 per 3×3 one; the 1×1 layers add none.
        self.reach = 3 + n_layers

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PixelCNNConfig(VariantConfig):
    # Feature maps between residual blocks, 2h in the paper's Figure 5 (h inside a block); the
    # paper uses h = 128 on CIFAR-10.
    channels: Annotated[int, Field(ge=2, multiple_of=2)] = 32
    # Residual blocks of 3×3 mask-B convolutions (paper: 15 layers on CIFAR-10).
    n_layers: Annotated[int, Field(ge=1)] = 4
    # Adam step size: a CPU-scale choice, not the paper's setting.
    lr: Annotated[float, Field(gt=0)] = 1e-3
    # Adam (β1, β2): Adam's defaults.
    betas: Betas = [0.9, 0.999]
    # Per-pixel distribution: "auto" is Bernoulli on binarised data, else the paper's 256-way softmax.
    output: Output = "auto"


class Autoregressive(LikelihoodVariant):
    """What the PixelCNN and the PixelRNN share: `self.G` maps images to per-pixel logits
    (`OutputHead`'s shapes), and subclasses give `_pixel_logits`, their fast sampling step."""

    family = "autoregressive"

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        cfg = cfg or cls.Config()
        problem = output_problem(cfg.output, data)
        if problem is None and data.shape[0] != 1:
            return (
                f"{cls.__name__} models one-channel images only (the paper's R → G → B channel "
                f"masks are not implemented); got {data.shape[0]} channels: use grayscale data"
            )
        return problem

    def __init__(self, cfg: VariantConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        if problem := self.data_problem(data, cfg):
            raise UsageError(problem)
        self.kind = output_kind(cfg.output, data)

    def _make_optimizer(self) -> None:
        self.opt_G = torch.optim.Adam(
            self.G.parameters(), lr=self.cfg.lr, betas=tuple(self.cfg.betas)
        )

    @property
    def z_dim(self) -> int:
        return math.prod(self.data.shape)  # one uniform per pixel drives its sample

    def _nll_nats(self, x: torch.Tensor) -> torch.Tensor:
        """Nats per image of `x` (floats in [-1, 1]), each pixel given the ones before it."""
        levels = to_levels(x, self.kind == "bernoulli")
        logits = self.G(from_levels(levels, self.kind == "bernoulli"))
        if self.kind == "bernoulli":
            return bernoulli_nll(logits, levels)
        return categorical_nll(logits, levels)

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        nll = self._nll_nats(next_real()).mean()
        self.opt_G.zero_grad(set_to_none=True)
        nll.backward()
        self.opt_G.step()
        self.step_schedulers()
        return {"loss/nll": nll.item()}

    @torch.no_grad()
    def nll(
        self, x: torch.Tensor, generator: torch.Generator, iwae_k: int
    ) -> dict[str, torch.Tensor]:
        # Exact: the model's conditionals multiply to the likelihood; no samples are drawn.
        return {"nll_nats": torch.cat([self._nll_nats(b) for b in x.split(NLL_BATCH)])}

    def _pixel_logits(
        self, canvas: torch.Tensor, r: int, c: int, state: Any
    ) -> tuple[torch.Tensor, Any]:
        """One fast sampling step: pixel (r, c)'s logits, equal to `_full_pass_logits`'."""
        raise NotImplementedError

    def _full_pass_logits(
        self, canvas: torch.Tensor, r: int, c: int, state: Any
    ) -> tuple[torch.Tensor, Any]:
        """The reference sampling step: the whole network on the whole canvas, for one pixel."""
        return pixel(self.G(canvas), r, c), None

    def _sample(self, z: torch.Tensor, pixel_logits: PixelLogits) -> torch.Tensor:
        """Images drawn pixel by pixel in raster order, pixel i by inverse CDF with uniform i of z:
        a function of z alone (the global generator is untouched)."""
        n, (_, height, width) = z.shape[0], self.data.shape
        u = uniforms(z).view(n, height, width)
        canvas = torch.zeros(n, 1, height, width, device=z.device)
        state = None
        for r in range(height):
            for c in range(width):
                logits, state = pixel_logits(canvas, r, c, state)
                level = sample_with_uniforms(logits, u[:, r, c], self.kind)
                canvas[:, 0, r, c] = from_levels(level, self.kind == "bernoulli")
        return canvas

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self._sample(z, self._pixel_logits)

    @torch.no_grad()
    def _generate_naive(self, z: torch.Tensor) -> torch.Tensor:
        """`generate` with one full pass per pixel: slow, exact, the test's reference."""
        return self._sample(z, self._full_pass_logits)


@VARIANTS.register("pixelcnn")
class PixelCNN(Autoregressive):
    paper = "van den Oord et al. 2016, Pixel Recurrent Neural Networks, PixelCNN"
    Config = PixelCNNConfig

    def __init__(self, cfg: PixelCNNConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.G = PixelCNNNet(cfg.channels, cfg.n_layers, self.kind).to(device)
        self._make_optimizer()

    def _pixel_logits(
        self, canvas: torch.Tensor, r: int, c: int, state: None
    ) -> tuple[torch.Tensor, None]:
        # Pixel (r, c) sees input rows r−R..r and columns c−R..c+R. A crop's zero border, where it
        # is not the image's, corrupts features one layer's reach further in per layer, so a margin
        # of R keeps the centre exact. The pointwise output layers run on the centre alone.
        reach = self.G.reach
        top, left = max(0, r - reach), max(0, c - reach)
        crop = canvas[:, :, top : r + 1, left : c + reach + 1]
        centre = self.G.features(crop)[:, :, r - top : r - top + 1, c - left : c - left + 1]
        return pixel(self.G.head(centre), 0, 0), None
