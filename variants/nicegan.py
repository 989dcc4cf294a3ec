"""NICE-GAN: Chen, Huang, Huang, Sun & Fang, "Reusing Discriminators for Encoding: Towards
Unsupervised Image-to-Image Translation", CVPR 2020.

No Independent Component for Encoding: each domain's discriminator, D_A or D_B, is an encoder (4×4
stride-2 convolutions, then the residual CAM attention of section 3.2) followed by classifiers at
several scales (the CAM logit of the pooled features, a local and a global patch classifier), all
spectrally normalised. Translating A → B decodes D_A's encoding of an A image with G_A2B, which is
only a decoder: residual blocks with AdaLIN whose γ, β an MLP computes from the features, sub-pixel
upsampling with LIN, tanh. G's loss sums the least-squares adversarial loss over every output of
the target domain's D, the cycle L1 loss through the other domain's encoder (weight 10) and a
reconstruction L1 loss (weight 10): the decoder into A maps A's own encoding back to the image,
G_B2A(E_A(a)) ≈ a. Decoupled training (section 3.3): the encoder is trained by D's loss alone. G's
losses flow through it into the decoders, but G's optimiser holds only the decoders. Adam (lr 1e-4,
betas (0.5, 0.999), weight decay 1e-4) updates D, then G, each step; rates fall linearly to 0 over
the second half of the budget, as in the authors' code.

`shared_encoder = False` is NICE-GAN with a separate encoder, the component the paper's design
removes: each translator gets an encoder of its own, E_A or E_B (the architecture of D's encoder
part), trained by G's losses, and D keeps its encoder for judging only. Against the default it
measures what reusing D's encoder is worth, at the cost of two more networks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import Betas, Variant, VariantConfig
from variants.losses import gradient_penalty, lsgan_discriminator_loss, lsgan_generator_loss
from variants.schedules import linear_decay


class NiceGANConfig(VariantConfig):
    # Width of the decoder's last feature map, doubled at each stage inwards (authors: 64).
    ngf: Annotated[int, Field(gt=0)] = 16
    # Width of D's first convolution, doubled at each stride-2 layer after it (authors: 64).
    ndf: Annotated[int, Field(gt=0)] = 16
    # AdaLIN residual blocks in each decoder (authors: 6).
    n_blocks: Annotated[int, Field(ge=1)] = 4
    # Stride-2 layers of the encoder; the decoder upsamples as many times (authors: 2).
    n_downsampling: Annotated[int, Field(ge=1)] = 2
    # Stride-2 layers each patch classifier adds to the previous one's, local first: the authors'
    # [1, 2] gives 70×70 and 286×286 patches at 256²; [0, 1] fits 28² images.
    d_layers: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = [0, 1]
    # Weight of the adversarial loss in G's and D's losses (authors: 1).
    adv_weight: Annotated[float, Field(gt=0)] = 1.0
    # Weight of the cycle L1 loss (authors: 10).
    cycle_weight: Annotated[float, Field(ge=0)] = 10.0
    # Weight of the reconstruction L1 loss, G_B2A(E_A(a)) ≈ a (authors: 10).
    recon_weight: Annotated[float, Field(ge=0)] = 10.0
    # Gradient penalty on D (Gulrajani et al. 2017). The authors' code declares a weight of 10
    # but never applies it, so 0 (off) is what their results used.
    gp_weight: Annotated[float, Field(ge=0)] = 0.0
    # Adam step size (authors: 1e-4).
    lr: Annotated[float, Field(gt=0)] = 1e-4
    # Adam (β1, β2) (authors: (0.5, 0.999)).
    betas: Betas = [0.5, 0.999]
    # Adam's L2 weight decay on every network (authors: 1e-4).
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    # Fraction of the budget after which learning rates fall linearly to 0 (authors: half).
    lr_decay_from: Annotated[float, Field(ge=0, le=1)] = 0.5
    # False: each translator has its own encoder, trained by G (see the module docstring).
    shared_encoder: bool = True


def d_layer(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    """D's layer: reflection padding, a spectrally normalised 4×4 convolution, LeakyReLU(0.2)."""
    conv = spectral_norm(nn.Conv2d(c_in, c_out, 4, stride))
    return [nn.ReflectionPad2d(1), conv, nn.LeakyReLU(0.2)]


class Encoder(nn.Module):
    """D's first layers; returns the features that translation decodes, and the CAM logit."""

    def __init__(self, in_ch: int, cfg: NiceGANConfig) -> None:
        super().__init__()
        layers, self.width = d_layer(in_ch, cfg.ndf, 2), cfg.ndf
        for _ in range(cfg.n_downsampling - 1):
            layers += d_layer(self.width, 2 * self.width, 2)
            self.width *= 2
        self.down = nn.Sequential(*layers)
        # CAM (U-GAT-IT): a logit from global average and max pooling, whose weights then say how
        # much each channel matters.
        self.fc = spectral_norm(nn.Linear(2 * self.width, 1, bias=False))
        self.merge = nn.Conv2d(2 * self.width, self.width, 1)
        # γ of section 3.2: attention is added to the features, starting from none.
        self.attention_gain = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.down(x)
        cam_logit = self.fc(torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1))
        # The authors weight the channels by the fc's raw weight, before spectral normalisation.
        weight = self.fc.parametrizations.weight.original.view(1, -1, 1, 1)
        attention = self.merge(torch.cat([x, x], 1) * weight)
        return F.leaky_relu(self.attention_gain * attention + x, 0.2), cam_logit


class Discriminator(nn.Module):
    """Encoder, then one patch classifier per entry of d_layers, each deeper than the last."""

    def __init__(self, in_ch: int, cfg: NiceGANConfig) -> None:
        super().__init__()
        self.encoder = Encoder(in_ch, cfg)
        width = self.encoder.width
        self.stages, self.heads = nn.ModuleList(), nn.ModuleList()
        for depth in cfg.d_layers:
            layers: list[nn.Module] = []
            for _ in range(depth):
                layers += d_layer(width, 2 * width, 2)
                width *= 2
            self.stages.append(nn.Sequential(*layers))
            score = spectral_norm(nn.Conv2d(2 * width, 1, 4, bias=False))
            self.heads.append(
                nn.Sequential(*d_layer(width, 2 * width, 1), nn.ReflectionPad2d(1), score)
            )

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The outputs (CAM logit, then patch scores from local to global) and the encoding."""
        features, cam_logit = self.encoder(x)
        outputs, h = [cam_logit], features
        for stage, head in zip(self.stages, self.heads, strict=True):
            h = stage(h)
            outputs.append(head(h))
        return outputs, features


class LIN(nn.Module):
    """Layer-Instance Normalisation: ρ·IN(x) + (1 − ρ)·LN(x) per channel, then γ·x + β. ρ stays in
    [0, 1] as the softmax of a pair of logits (IN, LN), as in the authors' code, not by clipping.
    AdaLIN (`adaptive`) takes γ and β of each image from outside; LIN learns them per channel.
    IN and LN divide by torch's biased variance (the authors' code uses the n − 1 estimate)."""

    def __init__(self, width: int, adaptive: bool = False) -> None:
        super().__init__()
        # The authors start AdaLIN mostly IN (ρ ≈ 0.9) and LIN mostly LN (ρ ≈ 0.1).
        start = [3.2, 1.0] if adaptive else [1.0, 3.2]
        self.rho_logits = nn.Parameter(torch.tensor([start]).repeat(width, 1))
        if not adaptive:
            self.gamma = nn.Parameter(torch.ones(1, width, 1, 1))
            self.beta = nn.Parameter(torch.zeros(1, width, 1, 1))

    @property
    def rho(self) -> torch.Tensor:
        return self.rho_logits.softmax(-1)[:, 0]

    def forward(
        self, x: torch.Tensor, gamma: torch.Tensor | None = None, beta: torch.Tensor | None = None
    ) -> torch.Tensor:
        rho = self.rho.view(1, -1, 1, 1)
        x = rho * F.instance_norm(x) + (1 - rho) * F.layer_norm(x, x.shape[1:])
        if gamma is None:
            return x * self.gamma + self.beta
        return x * gamma[..., None, None] + beta[..., None, None]


class AdaLINBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=False))
        self.conv2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=False))
        self.norm1, self.norm2 = LIN(width, adaptive=True), LIN(width, adaptive=True)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x), gamma, beta))
        return x + self.norm2(self.conv2(h), gamma, beta)


class Decoder(nn.Module):
    """The translator of one direction: an encoding (of either domain) → an image."""

    def __init__(self, out_ch: int, in_width: int, cells: int, cfg: NiceGANConfig) -> None:
        super().__init__()
        width = cfg.ngf * 2**cfg.n_downsampling
        conv = nn.Conv2d(in_width, width, 3)
        self.stem = nn.Sequential(nn.ReflectionPad2d(1), conv, LIN(width), nn.ReLU())
        # γ and β of every AdaLIN from an MLP on the whole feature map: the authors' full model
        # (their "light" one pools the map first).
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cells * width, width, bias=False),
            nn.ReLU(),
            nn.Linear(width, width, bias=False),
            nn.ReLU(),
        )
        self.gamma = nn.Linear(width, width, bias=False)
        self.beta = nn.Linear(width, width, bias=False)
        self.blocks = nn.ModuleList(AdaLINBlock(width) for _ in range(cfg.n_blocks))
        up: list[nn.Module] = []
        for _ in range(cfg.n_downsampling):
            half = width // 2
            conv = nn.Conv2d(width, half, 3, bias=False)
            up += [nn.ReflectionPad2d(1), conv, LIN(half), nn.ReLU()]
            # Sub-pixel upsampling, as the authors' code: 4× the channels, each four a 2×2 block.
            up += [nn.Conv2d(half, 4 * half, 1), nn.PixelShuffle(2), LIN(half), nn.ReLU()]
            width = half
        up += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_ch, 7, bias=False), nn.Tanh()]
        self.up = nn.Sequential(*up)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.stem(features)
        h = self.mlp(x)
        gamma, beta = self.gamma(h), self.beta(h)
        for block in self.blocks:
            x = block(x, gamma, beta)
        return self.up(x)


def _shape_problem(cfg: NiceGANConfig, data: DataSpec) -> str | None:
    (_, h, w), source = data.shape, (data.source_shape or data.shape)[1:]
    if tuple(source) != (h, w):
        return f"each decoder takes both domains' encodings, so A ({source}) and B need one size"
    if h % 2**cfg.n_downsampling or w % 2**cfg.n_downsampling:
        return (
            f"{cfg.n_downsampling} stride-2 layers and as many upsamplings need sides divisible "
            f"by {2**cfg.n_downsampling}, not {h}×{w}"
        )
    # Each stride-2 layer halves the side, rounding down; the coarsest classifier's two stride-1
    # 4×4 layers then need 3 or more.
    need = 3 * 2 ** (cfg.n_downsampling + sum(cfg.d_layers))
    if min(h, w) < need:
        return f"the coarsest discriminator scale needs sides of at least {need}, not {h}×{w}"
    return None


def _adversarial_loss(
    real_outputs: list[torch.Tensor], fake_outputs: list[torch.Tensor]
) -> torch.Tensor:
    """D's loss as the authors': MSE(real, 1) + MSE(fake, 0), not halved, summed over outputs."""
    pairs = zip(real_outputs, fake_outputs, strict=True)
    return sum(2 * lsgan_discriminator_loss(real, fake) for real, fake in pairs)


def _penalty(D: Discriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The gradient penalty on an image's total score: each output's mean, summed over outputs."""
    alpha = torch.rand(len(real), 1, 1, 1, device=real.device)
    return gradient_penalty(lambda x: sum(o.flatten(1).mean(1) for o in D(x)[0]), real, fake, alpha)


@VARIANTS.register("nicegan")
class NiceGAN(Variant):
    family = "translation"
    paper = "Chen et al. 2020, Reusing Discriminators for Encoding: Towards Unsupervised Image-to-Image Translation"
    Config = NiceGANConfig
    capabilities = frozenset({"translates_unpaired", "critic"})  # critics D_A and D_B

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        return _shape_problem(cfg or cls.Config(), data)

    def __init__(self, cfg: NiceGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        if problem := _shape_problem(cfg, data):
            raise UsageError(f"nicegan cannot be built for images of shape {data.shape}: {problem}")
        ch_b, ch_a = data.shape[0], (data.source_shape or data.shape)[0]
        cells = data.shape[1] * data.shape[2] // 4**cfg.n_downsampling
        # PyTorch's default initialisation, as the authors' code.
        self.D_A = Discriminator(ch_a, cfg).to(device)
        self.D_B = Discriminator(ch_b, cfg).to(device)
        width = self.D_A.encoder.width
        self.G_A2B = Decoder(ch_b, width, cells, cfg).to(device)
        self.G_B2A = Decoder(ch_a, width, cells, cfg).to(device)
        g_params = [*self.G_A2B.parameters(), *self.G_B2A.parameters()]
        if not cfg.shared_encoder:
            self.E_A = Encoder(ch_a, cfg).to(device)
            self.E_B = Encoder(ch_b, cfg).to(device)
            g_params += [*self.E_A.parameters(), *self.E_B.parameters()]
        adam = {"lr": cfg.lr, "betas": tuple(cfg.betas), "weight_decay": cfg.weight_decay}
        self.opt_G = torch.optim.Adam(g_params, **adam)
        self.opt_D = torch.optim.Adam([*self.D_A.parameters(), *self.D_B.parameters()], **adam)
        self.n_outputs = 1 + len(cfg.d_layers)  # CAM logit and the patch classifiers

    def set_budget(self, gen_steps: int) -> None:
        super().set_budget(gen_steps)
        self.sched_G = linear_decay(self.opt_G, gen_steps, self.cfg.lr_decay_from)
        self.sched_D = linear_decay(self.opt_D, gen_steps, self.cfg.lr_decay_from)

    @property
    def z_dim(self) -> int:
        return 0  # deterministic translators

    def encoders(self) -> tuple[nn.Module, nn.Module]:
        """The encoders translation decodes from, of A and of B."""
        if self.cfg.shared_encoder:
            return self.D_A.encoder, self.D_B.encoder
        return self.E_A, self.E_B

    @torch.no_grad()
    def translate(self, source: torch.Tensor, direction: str = "A2B") -> torch.Tensor:
        encoder = self.encoders()[0 if direction == "A2B" else 1]
        return (self.G_A2B if direction == "A2B" else self.G_B2A)(encoder(source)[0])

    def judge(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        """Every output of the critic of `domain` ("A" or "B") per image, each output's values
        repeated to one common length, so that each weighs the same in `critic_loss`."""
        outputs, _ = (self.D_A if domain == "A" else self.D_B)(images)
        flat = [out.flatten(1) for out in outputs]
        length = math.lcm(*(f.shape[1] for f in flat))
        return torch.cat([f.repeat_interleave(length // f.shape[1], 1) for f in flat], 1)

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        """`_adversarial_loss` on `judge`'s scores, where each output fills 1/n_outputs of them."""
        return 2 * self.n_outputs * lsgan_discriminator_loss(real_out, fake_out)

    def train_step(
        self, next_real: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        real_a, real_b = next_real()
        losses = self._discriminator_step(real_a, real_b)
        losses |= self._generator_step(real_a, real_b)
        self.step_schedulers()
        return losses

    def _discriminator_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        """D's update, encoders included: real images against translations by the current G."""
        cfg = self.cfg
        real_out_a, z_a = self.D_A(real_a)
        real_out_b, z_b = self.D_B(real_b)
        with torch.no_grad():
            if not cfg.shared_encoder:
                z_a, z_b = self.E_A(real_a)[0], self.E_B(real_b)[0]
            fake_b, fake_a = self.G_A2B(z_a), self.G_B2A(z_b)
        d_a = _adversarial_loss(real_out_a, self.D_A(fake_a)[0])
        d_b = _adversarial_loss(real_out_b, self.D_B(fake_b)[0])
        d_loss = cfg.adv_weight * (d_a + d_b)
        losses = {"loss/critic_A": d_a.item(), "loss/critic_B": d_b.item()}
        if cfg.gp_weight > 0:
            gp = _penalty(self.D_A, real_a, fake_a) + _penalty(self.D_B, real_b, fake_b)
            d_loss = d_loss + cfg.gp_weight * gp
            losses["loss/gradient_penalty"] = gp.item()
        self.opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_D.step()
        return losses

    def _generator_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        """The decoders' update (and the separate encoders', in the ablation). Ds are frozen: G's
        losses pass through D's encoder into the decoders but leave it as it is. The authors
        let those gradients reach D's weights and discard them, as D's optimiser zeroes them
        before its next step; freezing is the same update without that work."""
        cfg = self.cfg
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        encode_a, encode_b = self.encoders()
        z_a, z_b = encode_a(real_a)[0], encode_b(real_b)[0]
        fake_b, fake_a = self.G_A2B(z_a), self.G_B2A(z_b)
        fake_out_a, fake_z_a = self.D_A(fake_a)
        fake_out_b, fake_z_b = self.D_B(fake_b)
        if not cfg.shared_encoder:
            fake_z_a, fake_z_b = self.E_A(fake_a)[0], self.E_B(fake_b)[0]
        adversarial = sum(2 * lsgan_generator_loss(out) for out in [*fake_out_a, *fake_out_b])
        cycle = F.l1_loss(self.G_B2A(fake_z_b), real_a) + F.l1_loss(self.G_A2B(fake_z_a), real_b)
        recon = F.l1_loss(self.G_B2A(z_a), real_a) + F.l1_loss(self.G_A2B(z_b), real_b)
        g_loss = cfg.adv_weight * adversarial + cfg.cycle_weight * cycle + cfg.recon_weight * recon
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        return {
            "loss/generator": adversarial.item(),
            "loss/cycle": cycle.item(),
            "loss/reconstruction": recon.item(),
        }
