"""U-GAT-IT: Kim, Kim, Kang & Lee, "U-GAT-IT: Unsupervised Generative Attentional Networks with
Adaptive Layer-Instance Normalization for Image-to-Image Translation", ICLR 2020.

CycleGAN's two generators and cycle, with attention and an adaptive normalisation. Each G encodes
(7×7 stem, stride-2 downsamplings, residual blocks with instance norm), then its CAM module: an
auxiliary classifier on the globally average- and max-pooled features ("is this image from the
other domain?") whose weights re-weight the feature maps, so G attends where the domains differ.
An MLP on the attended features gives γ, β for the decoder's residual blocks, normalised with
AdaLIN, ρ·IN + (1 − ρ)·LN (eq. 1), ρ learned and clipped to [0, 1]; the upsamplings use LIN, its
static counterpart. Each domain has a global and a local discriminator, spectrally normalised, with
a CAM module of their own. Losses (section 2.2): least-squares GAN on the patch scores and on the
CAM logits of all four Ds (λ1 = 1), cycle L1 (λ2 = 10), identity L1 (λ3 = 10), and G's CAM loss
(λ4 = 1000). Details not in the paper follow the authors' PyTorch code (znxlwm/UGATIT-pytorch).
`cam = False` removes the attention and its losses (the paper's "w/o CAM" ablation); `norm` swaps
AdaLIN in the decoder for IN or LN (its normalisation ablation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.nn.utils.parametrize import is_parametrized

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import Betas, Variant, VariantConfig
from variants.losses import gan_discriminator_loss
from variants.schedules import linear_decay


class UGATITConfig(VariantConfig):
    # Width of G's stem, doubled at each downsampling (paper: 64).
    ngf: Annotated[int, Field(gt=0)] = 16
    # Width of each D's first layer, doubled at each later layer (paper: 64).
    ndf: Annotated[int, Field(gt=0)] = 16
    # Residual blocks in G's encoder, and as many AdaLIN blocks in its decoder (paper: 4 each).
    n_blocks: Annotated[int, Field(ge=1)] = 4
    # Stride-2 stages of G's encoder, undone by as many upsamplings (paper: 2).
    n_downsampling: Annotated[int, Field(ge=1)] = 2
    # Stride-2 layers of the global Ds (paper: 5, its "7 layers", at 256²); 3 see all of 28².
    d_layers_global: Annotated[int, Field(ge=1)] = 3
    # Stride-2 layers of the local Ds (paper: 3, 70×70 patches at 256²): 1: 16-pixel patches on 28².
    d_layers_local: Annotated[int, Field(ge=1)] = 1
    # γ, β from globally pooled features instead of the flattened map: the authors' light model,
    # whose MLP does not grow with the image (full U-GAT-IT's first MLP layer is 1M × 256 at 256²).
    light: bool = False
    # The CAM attention in G and D and its losses; False is the paper's "U-GAT-IT w/o CAM".
    cam: bool = True
    # Normalisation in G's decoder residual blocks, always followed by the MLP's γ, β: AdaLIN, or
    # the paper's ablations with plain IN or LN.
    norm: Literal["adalin", "in", "ln"] = "adalin"
    adv_weight: Annotated[float, Field(ge=0)] = 1.0  # λ1, least-squares GAN loss
    cycle_weight: Annotated[float, Field(ge=0)] = 10.0  # λ2, cycle L1
    identity_weight: Annotated[float, Field(ge=0)] = 10.0  # λ3, identity L1
    # λ4, G's CAM loss (D's CAM logits are in the least-squares loss, weighted λ1).
    cam_weight: Annotated[float, Field(ge=0)] = 1000.0
    lr: Annotated[float, Field(gt=0)] = 1e-4  # Adam step size
    betas: Betas = [0.5, 0.999]  # Adam (β1, β2)
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4  # Adam's L2 weight decay
    # Fraction of the budget after which learning rates fall linearly to 0 (authors' decay_flag).
    lr_decay_from: Annotated[float, Field(ge=0, le=1)] = 0.5


def _standardise(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    # Unbiased variance, as the authors' code (nn.InstanceNorm2d's is biased).
    var, mean = torch.var_mean(x, dim=dims, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5)


def _lin(x: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """ρ·IN(x) + (1 − ρ)·LN(x): per-channel statistics keep texture, per-image ones shape."""
    return rho * _standardise(x, (2, 3)) + (1 - rho) * _standardise(x, (1, 2, 3))


class AdaLIN(nn.Module):
    """Eq. 1: LIN with γ, β given by G's MLP; `norm` "in" or "ln" fixes ρ at 1 or 0 (ablations)."""

    def __init__(self, width: int, norm: str) -> None:
        super().__init__()
        self.norm = norm
        if norm == "adalin":
            self.rho = nn.Parameter(torch.full((1, width, 1, 1), 0.9))  # authors' code: 0.9

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        rho = self.rho if self.norm == "adalin" else float(self.norm == "in")
        return _lin(x, rho) * gamma[:, :, None, None] + beta[:, :, None, None]


class LIN(nn.Module):
    """Layer-Instance Normalisation of the upsampling blocks: learned ρ (from 0: LN), γ, β."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.rho = nn.Parameter(torch.zeros(1, width, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, width, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _lin(x, self.rho) * self.gamma + self.beta


def conv(in_ch: int, out_ch: int, k: int, stride: int = 1, bias: bool = False) -> nn.Sequential:
    """A reflection-padded convolution ("same" at stride 1), as every conv of the authors' nets."""
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(in_ch, out_ch, k, stride, bias=bias))


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(width, width, 3), nn.InstanceNorm2d(width), nn.ReLU(),
                                  conv(width, width, 3), nn.InstanceNorm2d(width))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AdaLINBlock(nn.Module):
    def __init__(self, width: int, norm: str) -> None:
        super().__init__()
        self.conv1, self.norm1 = conv(width, width, 3), AdaLIN(width, norm)
        self.conv2, self.norm2 = conv(width, width, 3), AdaLIN(width, norm)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x), gamma, beta))
        return x + self.norm2(self.conv2(h), gamma, beta)


class CAM(nn.Module):
    """Section 2.1.1: a linear classifier (no bias) on each of the average- and max-pooled features
    gives a logit; its weights, one per channel, re-weight the feature maps; the two re-weighted
    maps are merged by a 1×1 conv. Returns the attended features, the two logits and the heatmap."""

    def __init__(self, width: int, activation: nn.Module, spectral: bool) -> None:
        super().__init__()
        wrap = spectral_norm if spectral else (lambda m: m)
        self.gap_fc = wrap(nn.Linear(width, 1, bias=False))
        self.gmp_fc = wrap(nn.Linear(width, 1, bias=False))
        self.merge = nn.Sequential(nn.Conv2d(2 * width, width, 1), activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # mean/amax rather than adaptive pooling: their backward passes are deterministic on CUDA.
        logit = torch.cat([self.gap_fc(x.mean((2, 3))), self.gmp_fc(x.amax((2, 3)))], 1)
        maps = [x * _raw_weight(fc)[0, :, None, None] for fc in (self.gap_fc, self.gmp_fc)]
        x = self.merge(torch.cat(maps, 1))
        return x, logit, x.sum(1, keepdim=True)


def _raw_weight(fc: nn.Linear) -> torch.Tensor:
    # The authors' Ds score with the spectrally normalised weight but re-weight the maps with the
    # raw one (`parameters()` of a spectral-normed layer yields weight_orig); so do we.
    return fc.parametrizations.weight.original if is_parametrized(fc) else fc.weight


# A network's output, its CAM logits [B, 2] (None without CAM) and its heatmap [B, 1, h, w].
Outputs = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]


class Generator(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, side: tuple[int, int], cfg: UGATITConfig) -> None:
        super().__init__()
        ngf, n, width = cfg.ngf, cfg.n_downsampling, cfg.ngf * 2**cfg.n_downsampling
        layers = [conv(in_ch, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU()]
        for i in range(n):
            w = ngf * 2**i
            layers += [conv(w, 2 * w, 3, stride=2), nn.InstanceNorm2d(2 * w), nn.ReLU()]
        self.encoder = nn.Sequential(*layers, *[ResidualBlock(width) for _ in range(cfg.n_blocks)])
        self.cam = CAM(width, nn.ReLU(), spectral=False) if cfg.cam else None
        self.light = cfg.light
        mlp_in = width if cfg.light else width * (side[0] >> n) * (side[1] >> n)
        self.mlp = nn.Sequential(nn.Linear(mlp_in, width, bias=False), nn.ReLU(),
                                 nn.Linear(width, width, bias=False), nn.ReLU())  # fmt: skip
        self.gamma = nn.Linear(width, width, bias=False)
        self.beta = nn.Linear(width, width, bias=False)
        self.blocks = nn.ModuleList([AdaLINBlock(width, cfg.norm) for _ in range(cfg.n_blocks)])
        layers = []
        for i in range(n):
            w = width // 2**i
            layers += [nn.Upsample(scale_factor=2), conv(w, w // 2, 3), LIN(w // 2), nn.ReLU()]
        self.decoder = nn.Sequential(*layers, conv(ngf, out_ch, 7), nn.Tanh())

    def forward(self, x: torch.Tensor) -> Outputs:
        x = self.encoder(x)
        cam_logit = heatmap = None
        if self.cam is not None:
            x, cam_logit, heatmap = self.cam(x)
        h = self.mlp(x.mean((2, 3)) if self.light else x.flatten(1))
        gamma, beta = self.gamma(h), self.beta(h)
        for block in self.blocks:
            x = block(x, gamma, beta)
        return self.decoder(x), cam_logit, heatmap


class Discriminator(nn.Module):
    """`stride2` spectrally normalised 4×4 convolutions of stride 2, then one of stride 1 (each
    doubling the width after the first), CAM, and a 4×4 conv to one score per patch."""

    def __init__(self, in_ch: int, ndf: int, stride2: int, cam: bool) -> None:
        super().__init__()
        layers, width = [], in_ch
        for i in range(stride2 + 1):
            nxt = ndf * 2**i
            layers += [nn.ReflectionPad2d(1),
                       spectral_norm(nn.Conv2d(width, nxt, 4, 2 if i < stride2 else 1)),
                       nn.LeakyReLU(0.2)]  # fmt: skip
            width = nxt
        self.features = nn.Sequential(*layers)
        self.cam = CAM(width, nn.LeakyReLU(0.2), spectral=True) if cam else None
        self.head = nn.Sequential(nn.ReflectionPad2d(1),
                                  spectral_norm(nn.Conv2d(width, 1, 4, bias=False)))  # fmt: skip

    def forward(self, x: torch.Tensor) -> Outputs:
        x = self.features(x)
        cam_logit = heatmap = None
        if self.cam is not None:
            x, cam_logit, heatmap = self.cam(x)
        return self.head(x), cam_logit, heatmap


@VARIANTS.register("ugatit")
class UGATIT(Variant):
    family = "translation"
    paper = "Kim et al. 2020, U-GAT-IT: Unsupervised Generative Attentional Networks with Adaptive Layer-Instance Normalization for Image-to-Image Translation"
    Config = UGATITConfig
    capabilities = frozenset({"translates_unpaired", "critic"})  # critics: the global Ds

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        return _shape_problem(cfg or cls.Config(), data)

    def __init__(self, cfg: UGATITConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        if problem := _shape_problem(cfg, data):
            raise UsageError(f"ugatit cannot be built for images of shape {data.shape}: {problem}")
        ch, side = data.shape[0], data.shape[1:]
        # PyTorch's default initialisation, as the authors' code.
        self.G_A2B = Generator(ch, ch, side, cfg).to(device)
        self.G_B2A = Generator(ch, ch, side, cfg).to(device)
        self.D_GA = Discriminator(ch, cfg.ndf, cfg.d_layers_global, cfg.cam).to(device)  # judges A
        self.D_LA = Discriminator(ch, cfg.ndf, cfg.d_layers_local, cfg.cam).to(device)  # judges A
        self.D_GB = Discriminator(ch, cfg.ndf, cfg.d_layers_global, cfg.cam).to(device)  # judges B
        self.D_LB = Discriminator(ch, cfg.ndf, cfg.d_layers_local, cfg.cam).to(device)  # judges B
        adam = {"lr": cfg.lr, "betas": tuple(cfg.betas), "weight_decay": cfg.weight_decay}
        g_params = [*self.G_A2B.parameters(), *self.G_B2A.parameters()]
        d_params = [p for D in self._discriminators() for p in D.parameters()]
        self.opt_G = torch.optim.Adam(g_params, **adam)
        self.opt_D = torch.optim.Adam(d_params, **adam)

    def set_budget(self, gen_steps: int) -> None:
        super().set_budget(gen_steps)
        self.sched_G = linear_decay(self.opt_G, gen_steps, self.cfg.lr_decay_from)
        self.sched_D = linear_decay(self.opt_D, gen_steps, self.cfg.lr_decay_from)

    @property
    def z_dim(self) -> int:
        return 0  # deterministic translators

    @torch.no_grad()
    def translate(self, source: torch.Tensor, direction: str = "A2B") -> torch.Tensor:
        return (self.G_A2B if direction == "A2B" else self.G_B2A)(source)[0]

    def judge(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        """The patch scores of the global discriminator of `domain` ("A" or "B"): the critic whose
        diagnostics the harness logs (the local Ds and all CAM logits are trained, not logged)."""
        return (self.D_GA if domain == "A" else self.D_GB)(images)[0]

    def critic_network(self, domain: str = "") -> nn.Module:
        """The global discriminator of `domain`, the one `judge` asks."""
        return self.D_GA if domain == "A" else self.D_GB

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return _lsgan_critic_loss(real_out, fake_out)

    def _discriminators(self) -> tuple[Discriminator, ...]:
        return self.D_GA, self.D_LA, self.D_GB, self.D_LB

    def _scores(self, images: torch.Tensor, domain: str) -> list[torch.Tensor]:
        """Every output the least-squares loss applies to: the patch scores of the global and the
        local D of `domain`, and their CAM logits."""
        out = []
        for D in (self.D_GA, self.D_LA) if domain == "A" else (self.D_GB, self.D_LB):
            scores, cam_logit, _ = D(images)
            out += [scores] if cam_logit is None else [scores, cam_logit]
        return out

    def _critic_loss_on(self, real: torch.Tensor, fake: torch.Tensor, domain: str) -> torch.Tensor:
        pairs = zip(self._scores(real, domain), self._scores(fake, domain), strict=True)
        return sum(_lsgan_critic_loss(r, f) for r, f in pairs)

    def train_step(
        self, next_real: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        real_a, real_b = next_real()
        cfg = self.cfg
        # Translations, with G's CAM logits. G does not change before its own update below, so D's
        # update can use them detached (the authors' code runs G twice to the same effect).
        fake_b, cam_ab, _ = self.G_A2B(real_a)
        fake_a, cam_ba, _ = self.G_B2A(real_b)

        # Discriminators first (as the authors): real against translated, on every output.
        for D in self._discriminators():
            D.requires_grad_(True)
        d_a = self._critic_loss_on(real_a, fake_a.detach(), "A")
        d_b = self._critic_loss_on(real_b, fake_b.detach(), "B")
        self.opt_D.zero_grad(set_to_none=True)
        (cfg.adv_weight * (d_a + d_b)).backward()
        self.opt_D.step()

        # Generators: fool every output of both Ds, return on a round trip, leave an image of the
        # target domain as it is. Ds are frozen for this update.
        for D in self._discriminators():
            D.requires_grad_(False)
        scores = [*self._scores(fake_a, "A"), *self._scores(fake_b, "B")]
        adversarial = sum(_mse_to(s, 1.0) for s in scores)
        back_a, back_b = self.G_B2A(fake_b)[0], self.G_A2B(fake_a)[0]
        cycle = (back_a - real_a).abs().mean() + (back_b - real_b).abs().mean()
        same_a, cam_aa, _ = self.G_B2A(real_a)
        same_b, cam_bb, _ = self.G_A2B(real_b)
        identity = (same_a - real_a).abs().mean() + (same_b - real_b).abs().mean()
        g_loss = (cfg.adv_weight * adversarial + cfg.cycle_weight * cycle
                  + cfg.identity_weight * identity)  # fmt: skip
        losses = {"loss/generator": adversarial.item(), "loss/cycle": cycle.item(),
                  "loss/identity": identity.item()}  # fmt: skip
        if cfg.cam:
            # Each G's own classifier learns which inputs need translating: logit 1 for the other
            # domain's images, 0 for its own (identity) — BCE with logits, as a GAN's D is trained.
            cam = gan_discriminator_loss(cam_ab, cam_bb) + gan_discriminator_loss(cam_ba, cam_aa)
            g_loss = g_loss + cfg.cam_weight * cam
            losses["loss/cam"] = cam.item()
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        # ρ lives in [0, 1]: clipped after each step, as the authors' RhoClipper.
        with torch.no_grad():
            for G in (self.G_A2B, self.G_B2A):
                for name, p in G.named_parameters():
                    if name.endswith("rho"):
                        p.clamp_(0.0, 1.0)
        self.step_schedulers()
        return {**losses, "loss/critic_A": d_a.item(), "loss/critic_B": d_b.item()}


def _shape_problem(cfg: UGATITConfig, data: DataSpec) -> str | None:
    h, w = data.shape[1:]
    if data.source_shape not in (None, data.shape):
        return (f"the identity and CAM losses feed each G images of its own output domain, so A "
                f"and B need one shape, not {data.source_shape} and {data.shape}")  # fmt: skip
    # n stride-2 stages down and n upsamplings return an image's size only when 2**n divides it;
    # the decoder's reflection padding needs a bottleneck of at least 2×2.
    n = cfg.n_downsampling
    if h % 2**n or w % 2**n or min(h, w) >> n < 2:
        return (
            f"the generators take sides divisible by {2**n}, of {2 ** (n + 1)} or more, not {h}×{w}"
        )
    # Each stride-2 layer halves a side (rounding down); the two stride-1 4×4 convs after them
    # take 1 pixel each and their reflection padding needs 2, so 3 must be left.
    k = max(cfg.d_layers_global, cfg.d_layers_local)
    if min(h, w) >> k < 3:
        return (
            f"the discriminators' {k} stride-2 layers need sides of {3 * 2**k} or more, not {h}×{w}"
        )
    return None


def _mse_to(out: torch.Tensor, target: float) -> torch.Tensor:
    return ((out - target) ** 2).mean()


def _lsgan_critic_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """D's loss on one output as the authors' code computes it: MSE to 1 on real plus MSE to 0 on
    translated, without the ½ of Mao et al. (variants.losses.lsgan_discriminator_loss)."""
    return _mse_to(real_out, 1.0) + _mse_to(fake_out, 0.0)
