"""Architectures shared by name, so a comparison of losses runs on identical networks.

A variant's config picks one with `arch`; every variant builds its G and D with `build_pair`.

mlp    On 2-D points: the MLPs of WGAN-GP's gan_toy.py, 2 → 512 → 512 → 512 → (2 | 1), ReLU, linear
       output, no normalisation. On images, the MLP shape of Goodfellow et al. 2014: G maps z through
       ReLU layers to C·H·W values squashed by Tanh; D flattens the image and ends in one logit after
       LeakyReLU(0.2) layers. On multi-track piano rolls (tracks, bars, steps, pitches) the same,
       flattened: the unstructured baseline of the music task.
dcgan  Radford et al. 2016: G projects z to a small feature map and doubles its side with strided
       transposed convolutions (BN + ReLU; Tanh output without BN); D halves it with strided
       convolutions (LeakyReLU 0.2; BN except on the input layer) and one last convolution over the
       whole map gives the logit, so there are no fully connected hidden layers. Weights N(0, 0.02).
       Images only: 28 → 14 → 7, 32 → 16 → 8 → 4 and 8 → 4 are the side lengths for MNIST, CIFAR-10
       and sklearn's digits. `dcgan_encoder` is D's body without normalisation, read out to a code
       instead of a logit (f-AnoGAN's encoder, the convolutional autoencoder's).

Conditional networks (Mirza & Osindero 2014) receive the class as a one-hot vector y: G sees [z, y];
D sees [x, y] with x flattened (mlp), or x with K constant channels appended, channel k all ones
for class k (dcgan).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.variant import VariantConfig

# What each architecture can model: "points" are samples of shape (d,), "images" of shape (C, H, W),
# "music" piano rolls of shape (tracks, bars, steps, pitches).
DATA_KINDS = {"mlp": ("points", "images", "music"), "dcgan": ("images",)}


class ArchConfig(VariantConfig):
    """Architecture fields shared by every variant."""

    arch: Literal["mlp", "dcgan"] = "mlp"  # network family; see the module docstring
    # Latent size; None picks 2 on points (gan_toy.py: z ~ N(0, I₂)) and 100 on images (DCGAN).
    z_dim: Annotated[int, Field(gt=0)] | None = None
    width: Annotated[int, Field(gt=0)] = 512  # mlp: units per hidden layer (gan_toy.py: DIM = 512)
    depth: Annotated[int, Field(gt=0)] = 3  # mlp: hidden layers in G and D (Figure 1 left: 12)
    # dcgan: channels of G's last hidden map and of D's first; they double at each halving of the
    # side. 32 rather than the paper's 128 keeps a training step fast on a CPU.
    ngf: Annotated[int, Field(gt=0)] = 32
    ndf: Annotated[int, Field(gt=0)] = 32
    # Normalisation of D's hidden layers. None picks the architecture's own: none for mlp
    # (gan_toy.py, Goodfellow et al.), batch for dcgan. "layer" normalises each sample on its own.
    d_norm: Literal["batch", "layer", "none"] | None = None


def data_kind(data: DataSpec) -> str:
    return {1: "points", 4: "music"}.get(len(data.shape), "images")


def resolve_arch(cfg: ArchConfig, data: DataSpec) -> ArchConfig:
    """`cfg` with the data-dependent defaults filled in; refuses data the architecture cannot model."""
    kind = data_kind(data)
    if kind not in DATA_KINDS[cfg.arch]:
        raise UsageError(
            f"arch '{cfg.arch}' models {' and '.join(DATA_KINDS[cfg.arch])} only, not {kind} of "
            f"shape {data.shape}; choose arch = 'mlp' for these data"
        )
    if cfg.arch == "dcgan":
        dcgan_stages(data.shape)  # fails early, with the reason, on a side it cannot reach
    z_dim = cfg.z_dim or (2 if kind == "points" else 100)
    d_norm = cfg.d_norm or ("batch" if cfg.arch == "dcgan" else "none")
    return cfg.model_copy(update={"z_dim": z_dim, "d_norm": d_norm})


def build_pair(
    cfg: ArchConfig, data: DataSpec, conditional: bool = False
) -> tuple[nn.Module, nn.Module]:
    """Generator z → x and critic x → score [B, 1] for a resolved `cfg`, G built first."""
    num_classes = data.num_classes if conditional else 0
    if conditional and num_classes == 0:
        raise UsageError("a conditional variant needs labelled data (num_classes > 0)")
    if cfg.arch == "mlp":
        G, D = mlp_generator(cfg, data.shape, num_classes), mlp_critic(cfg, data.shape, num_classes)
    else:
        G, D = (
            dcgan_generator(cfg, data.shape, num_classes),
            dcgan_critic(cfg, data.shape, num_classes),
        )
        G.apply(dcgan_init)
        D.apply(dcgan_init)
    if conditional:
        G, D = ConditionalGenerator(G, num_classes), ConditionalCritic(D, num_classes, cfg.arch)
    return G, D


# --- mlp -----------------------------------------------------------------------------------------


def build_mlp(
    in_dim: int, out_dim: int, width: int, depth: int, activation=nn.ReLU, norm: str = "none"
) -> nn.Sequential:
    """`depth` hidden Linear(+norm)+activation layers of `width` units, then a linear output layer."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(in_dim if i == 0 else width, width))
        if i > 0 and norm != "none":  # as in DCGAN, the input layer is never normalised
            layers.append(nn.BatchNorm1d(width) if norm == "batch" else nn.LayerNorm(width))
        layers.append(activation())
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def mlp_generator(cfg: ArchConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(shape) == 1:  # gan_toy.py: linear output, points are not bounded
        return build_mlp(cfg.z_dim + num_classes, shape[0], cfg.width, cfg.depth)
    size = math.prod(shape)
    body = build_mlp(cfg.z_dim + num_classes, size, cfg.width, cfg.depth)
    return nn.Sequential(body, nn.Tanh(), nn.Unflatten(1, shape))  # images and rolls lie in [-1, 1]


def mlp_critic(cfg: ArchConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(shape) == 1:
        return build_mlp(shape[0] + num_classes, 1, cfg.width, cfg.depth, norm=cfg.d_norm)
    size = math.prod(shape)
    leaky = partial(nn.LeakyReLU, 0.2)  # Goodfellow et al. used maxout; LeakyReLU is its cheap kin
    return nn.Sequential(
        nn.Flatten(), build_mlp(size + num_classes, 1, cfg.width, cfg.depth, leaky, cfg.d_norm)
    )


# --- dcgan ---------------------------------------------------------------------------------------


def dcgan_stages(shape: tuple[int, ...]) -> tuple[int, int]:
    """(stride-2 stages, side of the smallest map): the side is halved while it stays even and ≥ 4."""
    side = shape[1]
    if shape[2] != side:
        raise UsageError(f"arch 'dcgan' needs square images, not {shape[1]}×{shape[2]}")
    stages = 0
    while side % 2 == 0 and side // 2 >= 4:
        side, stages = side // 2, stages + 1
    if stages == 0:
        raise UsageError(f"arch 'dcgan' needs an image side of 8, 28, 32, …; got {shape[1]}")
    return stages, side


def dcgan_generator(cfg: ArchConfig, shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    stages, base = dcgan_stages(shape)
    channels = cfg.ngf * 2 ** (stages - 1)
    # Project z to the smallest map (a matrix product, reshaped: the paper's first layer).
    layers: list[nn.Module] = [
        nn.Linear(cfg.z_dim + num_classes, channels * base * base, bias=False),
        nn.Unflatten(1, (channels, base, base)),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
    ]
    for _ in range(stages - 1):  # each stage doubles the side and halves the channels
        layers += [
            nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels // 2),
            nn.ReLU(),
        ]
        channels //= 2
    layers += [nn.ConvTranspose2d(channels, shape[0], 4, stride=2, padding=1), nn.Tanh()]
    return nn.Sequential(*layers)


def dcgan_downsampling(
    shape: tuple[int, ...], in_channels: int, ndf: int, norm: str
) -> tuple[list[nn.Module], int, int]:
    """The body of the DCGAN critic: (layers, channels of the smallest map, its side). Strided
    convolutions halve the side and double the channels, LeakyReLU(0.2) after each, `norm` on all
    but the input layer."""
    stages, base = dcgan_stages(shape)
    channels = ndf
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, channels, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),  # no normalisation on the input layer
    ]
    for _ in range(stages - 1):  # each stage halves the side and doubles the channels
        layers.append(nn.Conv2d(channels, channels * 2, 4, stride=2, padding=1))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(channels * 2))
        elif norm == "layer":  # over (C, H, W) of each sample, as WGAN-GP's code does
            layers.append(nn.GroupNorm(1, channels * 2))
        layers.append(nn.LeakyReLU(0.2))
        channels *= 2
    return layers, channels, base


def dcgan_critic(cfg: ArchConfig, shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    layers, channels, base = dcgan_downsampling(shape, shape[0] + num_classes, cfg.ndf, cfg.d_norm)
    # One convolution over the whole smallest map gives the logit: no fully connected layer.
    layers += [nn.Conv2d(channels, 1, base), nn.Flatten()]
    return nn.Sequential(*layers)


def dcgan_critic_features(D: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """[N, features]: the last hidden activation of a `dcgan_critic`, the map its logit is read from
    (the feature-matching layer of Salimans et al. 2016 that AnoGAN and f-AnoGAN compare)."""
    return D[:-2](x).flatten(1)


def dcgan_encoder(cfg: ArchConfig, shape: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """x → [N, out_dim]: the DCGAN critic's body without normalisation (so that each image is
    encoded on its own), read out linearly by one convolution over the whole smallest map; no
    output nonlinearity, as the codes it must hit are N(0, I) latents."""
    layers, channels, base = dcgan_downsampling(shape, shape[0], cfg.ndf, "none")
    layers += [nn.Conv2d(channels, out_dim, base), nn.Flatten()]
    return nn.Sequential(*layers)


def dcgan_problem(data: DataSpec) -> str | None:
    """Why arch 'dcgan' cannot take `data` (points, or an image side it cannot reach), or None."""
    if data_kind(data) != "images":
        return f"arch 'dcgan' models images (C, H, W) only, not {data_kind(data)} of shape {data.shape}"
    try:
        dcgan_stages(data.shape)
    except UsageError as exc:
        return str(exc)
    return None


def dcgan_init(m: nn.Module) -> None:
    """Radford et al.: all weights from N(0, 0.02); batch-norm scales from N(1, 0.02); biases 0."""
    if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


# --- conditioning (Mirza & Osindero 2014) --------------------------------------------------------


class ConditionalGenerator(nn.Module):
    """G(z, y) = net([z, one_hot(y)])."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net, self.num_classes = net, num_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = F.one_hot(labels, self.num_classes).to(z.dtype)
        return self.net(torch.cat([z, y], dim=1))


class ConditionalCritic(nn.Module):
    """D(x, y): the one-hot label joins the flattened sample (mlp) or is K extra channels (dcgan)."""

    def __init__(self, net: nn.Module, num_classes: int, arch: str) -> None:
        super().__init__()
        self.net, self.num_classes, self.as_channels = net, num_classes, arch == "dcgan"

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = F.one_hot(labels, self.num_classes).to(x.dtype)
        if self.as_channels:
            y = y[:, :, None, None].expand(-1, -1, *x.shape[2:])
            return self.net(torch.cat([x, y], dim=1))
        return self.net(torch.cat([x.flatten(1), y], dim=1))
