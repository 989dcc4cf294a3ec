"""StyleGAN: Karras, Laine & Aila, "A Style-Based Generator Architecture for Generative Adversarial
Networks", CVPR 2019.

A mapping network turns z into an intermediate latent w; the synthesis network starts from a
learned constant and, after every convolution, adds per-pixel noise and normalises each feature map
(instance norm) before rescaling and shifting it by a "style", an affine function of w (AdaIN).
Each layer may take its own w: training mixes two latents at a random layer (style mixing) so that
neighbouring styles do not learn to depend on each other.

The fields switch on the paper's Table 1 ablation, configs A–F, one step at a time:

| config | styles | const_input | noise | mixing_prob | mapping_depth | resample |
|--------|--------|-------------|-------|-------------|---------------|----------|
| A      | false  | false       | false | 0           | 0             | nearest  |
| B      | false  | false       | false | 0           | 0             | bilinear |
| C      | true   | false       | false | 0           | 8             | bilinear |
| D      | true   | true        | false | 0           | 8             | bilinear |
| E      | true   | true        | true  | 0           | 8             | bilinear |
| F      | true   | true        | true  | 0.9         | 8             | bilinear |

A is the progressive GAN's generator (pixel norm after every conv, z into a dense input layer)
without progressive growing. The paper's B also tuned hyperparameters, which a benchmark cannot
redo: here B differs from A in resampling only. F is the defaults.

Defaults and their sources in the official code, NVlabs/stylegan: z and w of 512, 8 mapping layers
at learning-rate multiplier 0.01, style mixing with probability 0.9, w's moving average at β = 0.995
and truncation ψ = 0.7 (networks_stylegan.py: G_style, G_mapping); Adam at lr 0.001 (the base rate
below 128×128), β = (0, 0.99), ε = 1e-8 for both networks, minibatch-stddev groups of 4 (train.py);
the non-saturating logistic loss with R1 on reals at γ = 10, FFHQ's setting (loss.py:
G_logistic_nonsaturating, D_logistic_simplegp). The paper's 512 feature maps are for GPUs; suites
on a CPU set `channels`, `d_channels`, `z_dim` and `w_dim` lower.

Architecture as in networks_stylegan.py, at one fixed resolution (no progressive growing):
equalised learning rate everywhere (weights stored N(0, 1/lr_mul²) and scaled by lr_mul·gain/√fan_in
at run time), gain √2 except the style affines, toRGB and D's output (gain 1), LeakyReLU(0.2).
"bilinear" resampling is the official one: nearest ×2 upsampling, conv, then the [1,2,1]⊗[1,2,1]/16
blur in G; blur, conv, then 2×2 average pooling in D. "nearest" leaves the blur out. G's output is
not squashed, as in the official code; `generate` clips it to [-1, 1], as the official code does
when it converts images for metrics. The synthesis side starts at the smallest s0 ≥ 4 with
H = s0·2^k, k ≥ 1 (28: 7 → 14 → 28; 32: 4 → … → 32), with two 3×3 convolutions per side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import Betas, Variant, VariantConfig
from variants.losses import gan_discriminator_loss, gan_generator_loss_nonsaturating

SQRT2 = math.sqrt(2)


class StyleGANConfig(VariantConfig):
    # Sizes of z and w (the paper: 512; without a mapping network w is z and w_dim is not used).
    z_dim: Annotated[int, Field(gt=0)] = 512
    w_dim: Annotated[int, Field(gt=0)] = 512
    # Dense layers of the mapping network z → w; 0: none, w = pixel_norm(z) (configs A, B).
    mapping_depth: Annotated[int, Field(ge=0)] = 8
    # The mapping network learns this many times slower than the rest (equalised-lr multiplier).
    mapping_lr_mul: Annotated[float, Field(gt=0)] = 0.01
    # True: AdaIN after every conv, styles an affine map of w; False: ProGAN's pixel norm, no styles.
    styles: bool = True
    # True: synthesis starts from a learned constant; False: from a dense layer of the latent.
    const_input: bool = True
    # Per-layer noise images, scaled per channel by learned strengths that start at 0.
    noise: bool = True
    # Probability per training batch of style mixing: two latents swapped at a random layer.
    mixing_prob: Annotated[float, Field(ge=0, le=1)] = 0.9
    # "bilinear": resampling with the official [1,2,1] blur; "nearest": without it (config A).
    resample: Literal["nearest", "bilinear"] = "bilinear"
    channels: Annotated[int, Field(gt=0)] = 512  # feature maps of every G layer
    d_channels: Annotated[int, Field(gt=0)] = 512  # feature maps of every D layer
    lr: Annotated[float, Field(gt=0)] = 0.001  # Adam step size of both networks
    betas: Betas = [0.0, 0.99]  # Adam (β1, β2)
    eps: Annotated[float, Field(gt=0)] = 1e-8  # Adam ε
    # γ of the R1 penalty γ/2·E‖∇D(x)‖² on reals, applied at every D step (no lazy regularisation).
    r1_gamma: Annotated[float, Field(ge=0)] = 10.0
    # β of the moving average of w that truncation pulls towards, updated at every G step.
    w_avg_beta: Annotated[float, Field(ge=0, le=1)] = 0.995
    # ψ for showing truncated samples (`truncate`); never applied by `generate`.
    truncation_psi: float = 0.7
    # Samples per minibatch-stddev group in D; a batch it does not divide uses gcd(group, batch).
    mbstd_group: Annotated[int, Field(gt=0)] = 4

    @model_validator(mode="after")
    def _consistent(self) -> StyleGANConfig:
        # A contradictory ablation config fails where the suite file is read, naming its entry.
        if problem := config_problem(self):
            raise ValueError(problem)
        return self


def synthesis_sides(shape: tuple[int, ...]) -> list[int]:
    """The sides G's feature maps take, s0 first, for images of `shape`; refuses shapes it cannot."""
    if len(shape) != 3:
        raise UsageError(f"stylegan models images (C, H, W) only, not data of shape {shape}")
    _, height, width = shape
    if height != width:
        raise UsageError(f"stylegan needs square images, not {height}×{width}")
    sides = [height]
    while sides[-1] % 2 == 0 and sides[-1] // 2 >= 4:
        sides.append(sides[-1] // 2)
    if len(sides) < 2:
        raise UsageError(
            f"stylegan cannot reach side {height}: it needs s0·2^k with s0 ≥ 4 and k ≥ 1 "
            "(for example 8, 28, 32)"
        )
    return sides[::-1]


def config_problem(cfg: StyleGANConfig) -> str | None:
    """Why `cfg` is contradictory, or None."""
    if not cfg.styles and cfg.mixing_prob > 0:
        return "styles = false has no styles to mix: set mixing_prob = 0"
    if not cfg.styles and cfg.mapping_depth > 0:
        return "styles = false feeds pixel-normed z to the input layer: set mapping_depth = 0"
    if not cfg.styles and cfg.const_input:
        return (
            "styles = false with const_input = true leaves G nothing of z: set const_input = false"
        )
    return None


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Each feature vector (dim 1) scaled to unit root mean square."""
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    """Each feature map of each sample scaled to mean 0 and unit variance."""
    x = x - x.mean((2, 3), keepdim=True)
    return x * torch.rsqrt(x.square().mean((2, 3), keepdim=True) + 1e-8)


def r1_penalty(real_out: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E‖∇ₓD(x)‖² at the reals `real` (which require grad) from D's outputs on them (Mescheder 2018)."""
    (grad,) = torch.autograd.grad(real_out.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def minibatch_stddev(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """x with one more channel: the mean stddev over each group of samples (ProGAN, section 3)."""
    batch, channels, height, width = x.shape
    # The official code asserts that the group divides the batch; gcd keeps odd batches working.
    group = math.gcd(group_size, batch)
    y = x.reshape(group, -1, channels, height, width)  # sample i is in group i mod (batch/group)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean((1, 2, 3))
    y = y.reshape(-1, 1, 1, 1).repeat(group, 1, height, width)
    return torch.cat([x, y], 1)


class MinibatchStddev(nn.Module):
    """D's minibatch-stddev layer as a module, so it sits in D's nn.Sequential."""

    def __init__(self, group_size: int) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return minibatch_stddev(x, self.group_size)


class EqualLinear(nn.Module):
    """Dense layer with equalised learning rate: weights stored N(0, 1/lr_mul²), scaled at run time."""

    def __init__(self, fan_in: int, out: int, gain: float = SQRT2, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, fan_in) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out))
        self.scale, self.lr_mul = lr_mul * gain / math.sqrt(fan_in), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Same-padded convolution with equalised learning rate (weights N(0, 1) scaled at run time)."""

    def __init__(self, fan_in: int, out: int, kernel: int, gain: float = SQRT2, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, fan_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None
        self.scale = gain / math.sqrt(fan_in * kernel * kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)


class Blur(nn.Module):
    """The official low-pass filter [1,2,1]⊗[1,2,1]/16, per channel, zero-padded."""

    def __init__(self) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel.expand(x.shape[1], 1, 3, 3)
        return F.conv2d(x, kernel, padding=1, groups=x.shape[1])


# Resampling by reshapes: their gradients are deterministic sums, unlike interpolate's on CUDA.
def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2."""
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class Downsample(nn.Module):
    """2×2 average pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.reshape(b, c, h // 2, 2, w // 2, 2).mean((3, 5))


class LayerEpilogue(nn.Module):
    """What follows each of G's convolutions: noise, bias, activation, normalisation and style."""

    def __init__(self, channels: int, side: int, w_dim: int, cfg: StyleGANConfig) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.act = nn.LeakyReLU(0.2)
        self.noise_strength = nn.Parameter(torch.zeros(channels)) if cfg.noise else None
        if cfg.noise:
            # For noise = "const": fixed noise, the official randomize_noise=False.
            self.register_buffer("noise_const", torch.randn(1, 1, side, side))
        self.affine = EqualLinear(w_dim, 2 * channels, gain=1.0) if cfg.styles else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: str) -> torch.Tensor:
        if self.noise_strength is not None:
            if noise == "random":
                n = torch.randn(len(x), 1, *x.shape[2:], device=x.device, dtype=x.dtype)
            else:
                n = self.noise_const
            x = x + self.noise_strength[:, None, None] * n
        x = self.act(x + self.bias[:, None, None])
        if self.affine is None:
            return pixel_norm(x)
        # The style's scale is 1 + y_s, so a zero affine (its bias starts at 0) leaves x unscaled.
        scale, shift = self.affine(w)[:, :, None, None].chunk(2, dim=1)
        return instance_norm(x) * (1 + scale) + shift


class Generator(nn.Module):
    """Mapping z → w, synthesis [w per layer] → image, and the moving average of w."""

    def __init__(self, cfg: StyleGANConfig, shape: tuple[int, ...], sides: list[int]) -> None:
        super().__init__()
        self.has_mapping = cfg.mapping_depth > 0 and cfg.styles
        w_dim = cfg.w_dim if self.has_mapping else cfg.z_dim
        self.num_ws, self.s0, self.channels = 2 * len(sides), sides[0], cfg.channels
        layers: list[nn.Module] = []
        for i in range(cfg.mapping_depth if self.has_mapping else 0):
            fan_in = cfg.z_dim if i == 0 else w_dim
            layers += [EqualLinear(fan_in, w_dim, lr_mul=cfg.mapping_lr_mul), nn.LeakyReLU(0.2)]
        self.mapping = nn.Sequential(*layers)
        self.register_buffer("w_avg", torch.zeros(w_dim))

        # Synthesis: the input at s0 (constant, or ProGAN's dense layer whose official gain √2/4 at
        # 4×4 is √2/s0), then a conv at s0; then per doubling an upsampling conv and a conv.
        ch = cfg.channels
        if cfg.const_input:
            self.const = nn.Parameter(torch.ones(1, ch, self.s0, self.s0))
        else:
            self.input = EqualLinear(w_dim, ch * self.s0**2, gain=SQRT2 / self.s0)
        self.convs = nn.ModuleList(
            EqualConv2d(ch, ch, 3, bias=False) for _ in range(self.num_ws - 1)
        )
        self.epilogues = nn.ModuleList(
            LayerEpilogue(ch, sides[i // 2], w_dim, cfg) for i in range(self.num_ws)
        )
        self.blur = Blur() if cfg.resample == "bilinear" else nn.Identity()
        self.to_rgb = EqualConv2d(ch, shape[0], 1, gain=1.0)

    def map(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping(pixel_norm(z))

    def synthesise(self, ws: torch.Tensor, noise: str = "random") -> torch.Tensor:
        if hasattr(self, "const"):
            x = self.const.expand(len(ws), -1, -1, -1)
        else:
            x = self.input(ws[:, 0]).view(len(ws), self.channels, self.s0, self.s0)
        x = self.epilogues[0](x, ws[:, 0], noise)
        for i, conv in enumerate(self.convs, start=1):
            x = self.blur(conv(upsample(x))) if i % 2 == 0 else conv(x)
            x = self.epilogues[i](x, ws[:, i], noise)
        return self.to_rgb(x)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.map(z)
        return self.synthesise(w[:, None].expand(-1, self.num_ws, -1))


def build_discriminator(cfg: StyleGANConfig, shape: tuple[int, ...], sides: list[int]) -> nn.Module:
    """D_basic of the official code at one resolution; LeakyReLU modules so diagnostics see them."""
    ch = cfg.d_channels
    layers: list[nn.Module] = [EqualConv2d(shape[0], ch, 1), nn.LeakyReLU(0.2)]
    for _ in sides[1:]:  # one block per halving, H down to s0
        layers += [EqualConv2d(ch, ch, 3), nn.LeakyReLU(0.2)]
        layers += [Blur()] if cfg.resample == "bilinear" else []
        layers += [EqualConv2d(ch, ch, 3), Downsample(), nn.LeakyReLU(0.2)]
    return nn.Sequential(
        *layers,
        MinibatchStddev(cfg.mbstd_group),
        EqualConv2d(ch + 1, ch, 3),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        EqualLinear(ch * sides[0] ** 2, ch),
        nn.LeakyReLU(0.2),
        EqualLinear(ch, 1, gain=1.0),
    )


@VARIANTS.register("stylegan")
class StyleGAN(Variant):
    family = "gan"
    paper = "Karras et al. 2019, A Style-Based Generator Architecture for GANs"
    Config = StyleGANConfig

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        try:
            synthesis_sides(data.shape)
        except UsageError as exc:
            return str(exc)
        return None

    def __init__(self, cfg: StyleGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        sides = synthesis_sides(data.shape)
        self.G = Generator(cfg, data.shape, sides).to(device)
        self.D = build_discriminator(cfg, data.shape, sides).to(device)
        self.num_ws = self.G.num_ws
        # One group each: the mapping's slower rate comes from its lr_mul, not from the optimiser.
        adam = {"lr": cfg.lr, "betas": tuple(cfg.betas), "eps": cfg.eps}
        self.opt_G = torch.optim.Adam(self.G.parameters(), **adam)
        self.opt_D = torch.optim.Adam(self.D.parameters(), **adam)

    @property
    def has_mapping(self) -> bool:
        return self.G.has_mapping

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """w [B, w_dim] of z: pixel_norm(z), through the mapping network if there is one."""
        return self.G.map(z)

    def synthesise(
        self, ws: torch.Tensor, noise: Literal["random", "const"] = "random"
    ) -> torch.Tensor:
        """Images of per-layer latents ws [B, num_ws, w_dim]; "const" noise makes them repeatable."""
        return self.G.synthesise(ws, noise)

    def truncate(self, w: torch.Tensor, psi: float | None = None) -> torch.Tensor:
        """w pulled towards the average w: w_avg + ψ·(w - w_avg), ψ = truncation_psi by default."""
        return self.G.w_avg.lerp(w, self.cfg.truncation_psi if psi is None else psi)

    def mix(self, w1: torch.Tensor, w2: torch.Tensor, crossover: int) -> torch.Tensor:
        """ws [B, num_ws, w_dim]: w1 for the layers before `crossover`, w2 from it on."""
        first = (torch.arange(self.num_ws, device=w1.device) < crossover)[None, :, None]
        return torch.where(first, w1[:, None], w2[:, None])

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        w = self.map(z)
        return self.synthesise(w[:, None].expand(-1, self.num_ws, -1)).clamp(-1, 1)

    def training_ws(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ws, w) of a training batch: w broadcast to every layer or, with probability mixing_prob
        (drawn once per batch, as the official code does), mixed with a second w at a crossover
        uniform in [1, num_ws - 1]."""
        w = self.map(torch.randn(n, self.cfg.z_dim, device=self.device))
        ws = w[:, None].expand(-1, self.num_ws, -1)
        if self.cfg.mixing_prob > 0 and torch.rand(()).item() < self.cfg.mixing_prob:
            w2 = self.map(torch.randn(n, self.cfg.z_dim, device=self.device))
            ws = self.mix(w, w2, int(torch.randint(1, self.num_ws, ())))
        return ws, w

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return gan_discriminator_loss(real_out, fake_out)

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        # Discriminator: logistic loss plus γ/2 times R1 on the reals (D_logistic_simplegp).
        self.D.requires_grad_(True)
        real = next_real().detach().requires_grad_(self.cfg.r1_gamma > 0)
        with torch.no_grad():
            fake = self.synthesise(self.training_ws(len(real))[0])
        real_out = self.D(real)
        d_loss = self.critic_loss(real_out, self.D(fake))
        r1 = r1_penalty(real_out, real) if self.cfg.r1_gamma > 0 else torch.zeros(())
        self.opt_D.zero_grad(set_to_none=True)
        (d_loss + 0.5 * self.cfg.r1_gamma * r1).backward()
        self.opt_D.step()

        # Generator: the non-saturating loss against the frozen D, then w's moving average.
        self.D.requires_grad_(False)
        ws, w = self.training_ws(len(real))
        g_loss = gan_generator_loss_nonsaturating(self.D(self.synthesise(ws)))
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        with torch.no_grad():
            self.G.w_avg.lerp_(w.mean(0), 1 - self.cfg.w_avg_beta)
        return {
            "loss/critic": d_loss.item(),
            "loss/r1_penalty": r1.item(),
            "loss/generator": g_loss.item(),
        }
