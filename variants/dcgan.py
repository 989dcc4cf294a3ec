"""DCGAN: Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016.

The algorithm is the GAN of Goodfellow et al. 2014 with the non-saturating generator loss; what the
paper contributes is the architecture (strided convolutions, batch norm, ReLU/LeakyReLU, Tanh output,
weights from N(0, 0.02); `arch = "dcgan"` in variants/nets.py) and the optimiser that trains it
stably: Adam, lr 2e-4, β1 = 0.5. Only those defaults differ from `gan`, so the training step is
GAN's own and a dcgan-vs-gan comparison on the same `arch` isolates the hyperparameters.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from bench.registry import VARIANTS
from bench.variant import Betas
from variants.gan import GAN, GANConfig


class DCGANConfig(GANConfig):
    arch: Literal["mlp", "dcgan"] = "dcgan"  # the paper's all-convolutional G and D
    n_critic: Annotated[int, Field(gt=0)] = 1  # one D step per G step, as in the paper
    lr: Annotated[float, Field(gt=0)] = 2e-4  # Adam step size (section 4: 0.001 was too high)
    betas: Betas = [0.5, 0.999]  # Adam (β1, β2); β1 = 0.9 made training oscillate (section 4)


@VARIANTS.register("dcgan")
class DCGAN(GAN):
    family = "gan"
    paper = "Radford et al. 2016, Unsupervised Representation Learning with Deep Convolutional GANs"
    Config = DCGANConfig
