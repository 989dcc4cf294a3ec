import math

import pytest
import torch
from torch import nn

from variants.losses import (
    gan_discriminator_loss,
    gan_generator_loss_minimax,
    gan_generator_loss_nonsaturating,
    gradient_penalty,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
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


def test_lsgan_losses_closed_form():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    # 0-1-1 coding: ½·mean((1-1)², (3-1)²) + ½·mean((0-0)², (-2-0)²) = ½·2 + ½·2.
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx(2.0)
    # G wants D(G(z)) = 1: ½·mean((0-1)², (-2-1)²) = ½·5.
    assert lsgan_generator_loss(fake).item() == pytest.approx(2.5)
    # The -1-1-0 coding: ½·mean(0, 4) + ½·mean((0+1)², (-2+1)²) = 1 + 1/2; G: ½·mean(0, 4) = 1.
    loss = lsgan_discriminator_loss(real, fake, real_target=1.0, fake_target=-1.0)
    assert loss.item() == pytest.approx(1.5)
    assert lsgan_generator_loss(fake, target=0.0).item() == pytest.approx(1.0)


def test_lsgan_losses_vanish_at_their_targets():
    ones, zeros = torch.ones(5), torch.zeros(5)
    assert lsgan_discriminator_loss(ones, zeros).item() == 0.0
    assert lsgan_generator_loss(ones).item() == 0.0


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
