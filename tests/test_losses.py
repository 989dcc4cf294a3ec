import math

import pytest
import torch
from torch import nn

from variants.losses import (
    gan_discriminator_loss,
    gan_generator_loss_minimax,
    gan_generator_loss_nonsaturating,
    gradient_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)


def test_gan_losses_at_an_undecided_discriminator():
    zeros = torch.zeros(4)
    # D = sigmoid(0) = 1/2 everywhere: -log(1/2) - log(1/2) = 2 log 2.
    assert gan_discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert gan_generator_loss_nonsaturating(zeros).item() == pytest.approx(math.log(2))
    assert gan_generator_loss_minimax(zeros).item() == pytest.approx(-math.log(2))


def test_gan_discriminator_loss_closed_form():
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    expected = -math.log(1 / (1 + math.exp(-2))) - math.log(1 - 1 / (1 + math.exp(1)))
    assert gan_discriminator_loss(real, fake).item() == pytest.approx(expected)


def test_wasserstein_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.5])
    assert wasserstein_critic_loss(real, fake).item() == pytest.approx(0.5 - 2.0)
    assert wasserstein_generator_loss(fake).item() == pytest.approx(-0.5)


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = w·x has gradient w everywhere, so the penalty is (‖w‖ - 1)² wherever it is evaluated.
    critic = nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    alpha = torch.rand(8, 1)
    assert gradient_penalty(critic, real, fake, alpha).item() == pytest.approx((5.0 - 1.0) ** 2)
