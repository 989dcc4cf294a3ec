"""Adversarial losses and penalties as pure functions of critic outputs (no backward, no optimiser).

The harness's diagnostics call the same functions, so what is measured is what is trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))) with D = sigmoid(logits) (Goodfellow et al. 2014, eq. 1)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def gan_generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)): the 'non-saturating' generator loss of Goodfellow et al. 2014, section 3."""
    return F.softplus(-fake_logits).mean()


def gan_generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """log(1 - D(G(z))): the generator's side of the minimax game, which saturates early."""
    return -F.softplus(fake_logits).mean()


def lsgan_discriminator_loss(
    real_out: torch.Tensor,
    fake_out: torch.Tensor,
    real_target: float = 1.0,
    fake_target: float = 0.0,
) -> torch.Tensor:
    """½E[(D(x) - b)²] + ½E[(D(G(z)) - a)²] with b = real_target, a = fake_target (Mao et al. 2017)."""
    return (
        0.5 * ((real_out - real_target) ** 2).mean() + 0.5 * ((fake_out - fake_target) ** 2).mean()
    )


def lsgan_generator_loss(fake_out: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """½E[(D(G(z)) - c)²] with c = target: G wants D to take its samples for real (Mao et al. 2017)."""
    return 0.5 * ((fake_out - target) ** 2).mean()


def wasserstein_critic_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))] - E[D(x)]; its negation is the critic's estimate of the Wasserstein-1 distance."""
    return fake_out.mean() - real_out.mean()


def wasserstein_generator_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]."""
    return -fake_out.mean()


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """E[(‖∇D(x̂)‖₂ - 1)²] at x̂ = αx + (1-α)G(z) (Gulrajani et al. 2017, Algorithm 1).

    `alpha` is passed in, shape [B, 1, ...], so the function holds no random state.
    """
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
