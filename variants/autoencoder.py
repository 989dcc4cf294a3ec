"""A convolutional autoencoder: the reconstruction baseline of anomaly detection, without a GAN.

Hinton & Salakhutdinov, "Reducing the Dimensionality of Data with Neural Networks", Science 2006:
an encoder maps an image to a small code and a decoder maps the code back, both trained to
minimise the reconstruction error; an image unlike the training images is reconstructed worse.
Ruff et al., "Deep One-Class Classification", ICML 2018, report this deep convolutional autoencoder
(DCAE, their Table 1) on the one-class protocol the anomaly GANs are measured on: train on the
normal class only, score every test image by its reconstruction error.

Networks: the encoder is the DCGAN critic's body without normalisation read out to a `z_dim` code
(`dcgan_encoder` of variants/nets.py), the decoder the DCGAN generator from that code, so the
autoencoder has the capacity of the anomaly GANs' networks and a comparison with them isolates how
they are trained. Score: the mean squared reconstruction error of each image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import Betas, Variant, VariantConfig
from variants.nets import ArchConfig, dcgan_encoder, dcgan_generator, dcgan_init, dcgan_problem


class AutoencoderConfig(VariantConfig):
    # Size of the bottleneck code: Ruff et al.'s MNIST networks end in 32 units.
    z_dim: Annotated[int, Field(gt=0)] = 32
    # Channels of the decoder's last hidden map and the encoder's first, doubling at each halving
    # of the side: nets.py's DCGAN defaults, as the anomaly GANs use.
    ngf: Annotated[int, Field(gt=0)] = 32
    ndf: Annotated[int, Field(gt=0)] = 32
    # Adam step size. Ruff et al. trained for hundreds of epochs at 1e-4 then 1e-5; a benchmark
    # budget is far shorter, so the harness takes Adam's own default.
    lr: Annotated[float, Field(gt=0)] = 1e-3
    betas: Betas = [0.9, 0.999]  # Adam (β1, β2): Kingma & Ba's defaults


@VARIANTS.register("conv_autoencoder")
class ConvAutoencoder(Variant):
    family = "anomaly"
    paper = "Hinton & Salakhutdinov 2006, autoencoders; as the DCAE baseline of Ruff et al. 2018"
    Config = AutoencoderConfig
    capabilities = frozenset({"scores_anomalies"})

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        return dcgan_problem(data)

    def __init__(self, cfg: AutoencoderConfig, data: DataSpec, device: torch.device) -> None:
        if problem := dcgan_problem(data):
            raise UsageError(f"conv_autoencoder: {problem}")
        super().__init__(cfg, data, device)
        arch = ArchConfig(arch="dcgan", z_dim=cfg.z_dim, ngf=cfg.ngf, ndf=cfg.ndf, d_norm="none")
        # The encoder keeps PyTorch's default initialisation (DCGAN's N(0, 0.02) relies on batch
        # norm, which it lacks); the decoder is the DCGAN generator, batch norm and all.
        self.E = dcgan_encoder(arch, data.shape, cfg.z_dim).to(device)
        self.G = dcgan_generator(arch, data.shape, 0).to(device)
        self.G.apply(dcgan_init)
        params = [*self.E.parameters(), *self.G.parameters()]
        self.opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        x = next_real()
        loss = F.mse_loss(self.G(self.E(x)), x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss/reconstruction": loss.item()}

    @torch.no_grad()
    def anomaly_scores(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # Deterministic: `generator` is not drawn from.
        return (x - self.G(self.E(x))).square().flatten(1).mean(1).float().cpu()
