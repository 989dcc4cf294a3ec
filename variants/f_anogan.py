"""f-AnoGAN: Schlegl et al., "f-AnoGAN: Fast unsupervised anomaly detection with generative
adversarial networks", Medical Image Analysis 2019.

Training has two stages on normal images only, the second on the frozen result of the first:
1. a WGAN-GP (variants/wgan_gp.py, trained unchanged) learns G: z → x and its critic D;
2. an encoder E: x → z learns to invert G with G and D frozen. Of the paper's encoder trainings,
   izi_f, the one it recommends: G(E(x)) must reproduce x in pixels and in D's features,
       L(x) = (1/n)·‖x - G(E(x))‖² + κ·(1/n_d)·‖f(x) - f(G(E(x)))‖²,
   with f D's last hidden activation, n the number of pixels, n_d of features, and κ = 1.
An image's anomaly score is the same L(x): one pass through E, G and D instead of AnoGAN's
iterative latent search, which is what makes it fast.

The harness counts generator steps: the first (1 - encoder_fraction) of the budget are WGAN-GP
steps (n_critic critic steps, then one G step), the rest one encoder step each. A learning-rate
scheduler of E counts them, so a run resumed from a checkpoint continues in the right stage.

Networks: `arch = "dcgan"` of variants/nets.py for G and D, and E is D's body read out to z
(`dcgan_encoder`). The authors used WGAN-GP's 64×64 ResNets for all three, too slow for a CPU,
with layer norm in D (d_norm = "layer" here; "none", the default, is WGAN-GP's DCGAN critic).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Annotated, Literal

import torch
from pydantic import Field

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import VariantConfig
from variants.anogan import frozen
from variants.nets import dcgan_critic_features, dcgan_encoder, dcgan_problem
from variants.wgan_gp import WGANGP, WGANGPConfig


class FAnoGANConfig(WGANGPConfig):
    # E and the feature residual read the DCGAN critic's body and last hidden feature map.
    arch: Literal["dcgan"] = "dcgan"
    # κ, the weight of the feature residual against the image residual (the paper: 1).
    kappa: Annotated[float, Field(ge=0)] = 1.0
    # Fraction of the generator-step budget that trains E, after the GAN. The authors' code trains
    # E for 50,000 iterations after its WGAN-GP; a fraction keeps both stages in any budget.
    encoder_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.25
    # E's step size, for Adam at the GAN's `betas`. The authors' code trains E with TensorFlow's
    # RMSProp at 5e-5 (decay 0.9, no momentum), which Adam at WGAN-GP's β = (0, 0.9), the default
    # `betas`, matches up to Adam's bias correction and ε.
    encoder_lr: Annotated[float, Field(gt=0)] = 5e-5


def izi_f_residuals(
    x: torch.Tensor, rec: torch.Tensor, x_features: torch.Tensor, rec_features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Of each image [N]: the mean squared residual over its pixels, and over its D features."""
    image = (x - rec).square().flatten(1).mean(1)
    features = (x_features - rec_features).square().mean(1)
    return image, features


@VARIANTS.register("f_anogan")
class FAnoGAN(WGANGP):
    family = "anomaly"
    paper = "Schlegl et al. 2019, f-AnoGAN: Fast unsupervised anomaly detection with GANs"
    Config = FAnoGANConfig
    capabilities = frozenset({"scores_anomalies", "critic"})

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        return dcgan_problem(data)

    def __init__(self, cfg: FAnoGANConfig, data: DataSpec, device: torch.device) -> None:
        if problem := dcgan_problem(data):
            raise UsageError(f"f_anogan: {problem}")
        super().__init__(cfg, data, device)  # G and D first, drawn exactly as wgan_gp draws them
        # PyTorch's default initialisation: DCGAN's N(0, 0.02) relies on batch norm, E has none.
        self.E = dcgan_encoder(self.cfg, data.shape, self.cfg.z_dim).to(device)
        self.opt_E = torch.optim.Adam(
            self.E.parameters(), lr=cfg.encoder_lr, betas=tuple(cfg.betas)
        )

    def set_budget(self, gen_steps: int) -> None:
        super().set_budget(gen_steps)
        self.gan_steps = round((1 - self.cfg.encoder_fraction) * gen_steps)

        # E's rate is zero while the GAN trains. The scheduler's step count (last_epoch) is also
        # the stage clock, and a checkpoint restores it with the scheduler.
        def factor(step: int) -> float:
            return 1.0 if step >= self.gan_steps else 0.0

        self.sched_E = torch.optim.lr_scheduler.LambdaLR(self.opt_E, factor)

    @property
    def phase(self) -> str:
        """The stage the next training step belongs to: "gan" or "encoder"."""
        return "gan" if self.sched_E.last_epoch < self.gan_steps else "encoder"

    def residuals(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """izi_f's image and feature residuals of each image [N], for x → E → G → D."""
        rec = self.G(self.E(x))
        with torch.no_grad():
            x_features = dcgan_critic_features(self.D, x)
        return izi_f_residuals(x, rec, x_features, dcgan_critic_features(self.D, rec))

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        if not hasattr(self, "sched_E"):
            raise RuntimeError(
                "f_anogan: call set_budget(gen_steps) before training: its GAN and encoder "
                "stages are fractions of the budget"
            )
        if self.phase == "gan":
            losses = super().train_step(next_real)
        else:
            # Encoder: one step of izi_f. G and D are frozen and, as in the authors' code, in
            # inference mode: G's batch norm uses (and keeps) its running statistics, as at scoring.
            x = next_real()
            modes = self.G.training, self.D.training
            self.G.eval()
            self.D.eval()
            with frozen(self.G, self.D):
                image, features = self.residuals(x)
                loss = (image + self.cfg.kappa * features).mean()
                self.opt_E.zero_grad(set_to_none=True)
                loss.backward()
                self.opt_E.step()
            self.G.train(modes[0])
            self.D.train(modes[1])
            losses = {
                "loss/encoder": loss.item(),
                "loss/encoder_image": image.mean().item(),
                "loss/encoder_features": features.mean().item(),
            }
        with warnings.catch_warnings():
            # E's optimiser does not step while the GAN trains; torch warns of that once.
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`")
            self.step_schedulers()
        return losses

    @torch.no_grad()
    def anomaly_scores(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # No randomness: E gives each image its latent, so `generator` is not drawn from.
        image, features = self.residuals(x)
        return (image + self.cfg.kappa * features).float().cpu()
