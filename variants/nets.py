"""Architectures shared by name, so a comparison of losses runs on identical networks.

toy_mlp: the MLPs of WGAN-GP's gan_toy.py, 2 → 512 → 512 → 512 → (2 | 1), ReLU, no normalisation.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

from bench.variant import VariantConfig


class ToyMLPConfig(VariantConfig):
    """Architecture fields shared by every variant on 2-D data."""

    z_dim: Annotated[int, Field(gt=0)] = 2  # latent size; gan_toy.py samples z ~ N(0, I₂)
    width: Annotated[int, Field(gt=0)] = 512  # units per hidden layer (gan_toy.py: DIM = 512)
    depth: Annotated[int, Field(gt=0)] = 3  # hidden ReLU layers in G and D (Figure 1 left: 12)


def build_mlp(in_dim: int, out_dim: int, width: int, depth: int) -> nn.Sequential:
    """`depth` hidden Linear+ReLU layers of `width` units, then a linear output layer."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(in_dim if i == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def build_toy_pair(cfg: ToyMLPConfig, data_dim: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Generator z → x and critic x → score with the same width and depth."""
    return (
        build_mlp(cfg.z_dim, data_dim, cfg.width, cfg.depth),
        build_mlp(data_dim, 1, cfg.width, cfg.depth),
    )
