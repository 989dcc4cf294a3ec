"""SRGAN: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
Network", CVPR 2017.

G is SRResNet (variants/srresnet.py). D (Figure 4, bottom) classifies HR images alone: a conv3×3
and LeakyReLU(0.2), seven conv3×3-BN-LeakyReLU layers (widths 1, 2, 2, 4, 4, 8, 8 × ndf, every
other one of stride 2), then Dense(1024), LeakyReLU and Dense(1): a logit, the paper's sigmoid
being inside the BCE loss. G minimises the perceptual loss (section 2.2): a content loss plus
10⁻³ × the non-saturating adversarial loss -log D(G(I_LR)).

The content loss is the pixel MSE (the paper's SRGAN-MSE), VGG54 (MSE between the feature maps of
an ImageNet VGG19 at the ReLU after conv5_4, rescaled by 1/12.75, the paper's choice), or "domain":
the same feature-space MSE in a frozen network the harness hands over (`set_content_network`), as
no installed package ships ImageNet VGG weights for offline use.

As in the paper, G first trains as SRResNet on the MSE alone (there: 10⁶ updates) and D waits;
then both train adversarially (there: 10⁵ updates at 10⁻⁴ and 10⁵ at 10⁻⁵). Here the two phases
and the rate drop are fractions of one budget, counted by the schedulers, so checkpoints keep them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
import torchvision
from pydantic import Field
from torch import nn

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import Betas, Variant, VariantConfig
from variants.losses import gan_discriminator_loss, gan_generator_loss_nonsaturating
from variants.srresnet import build_generator, upscaling_problem

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class SRGANConfig(VariantConfig):
    # Residual blocks in G, as in SRResNet (paper: 16).
    n_blocks: Annotated[int, Field(ge=1)] = 16
    # Channels of G's feature maps, as in SRResNet (paper: 64).
    width: Annotated[int, Field(gt=0)] = 64
    # Width of D's first layer; D's layers widen to 8× it (paper: 64, so 512).
    ndf: Annotated[int, Field(gt=0)] = 64
    # Adam step size of G and D before the drop (paper: 10⁻⁴, then 10⁻⁵).
    lr: Annotated[float, Field(gt=0)] = 1e-4
    # Adam (β1, β2): the paper gives β1 = 0.9; β2 is Adam's default.
    betas: Betas = [0.9, 0.999]
    # Weight of the adversarial loss against the content loss (paper: 10⁻³).
    adv_weight: Annotated[float, Field(ge=0)] = 1e-3
    # "mse": pixels (SRGAN-MSE); "vgg54": ImageNet VGG19 features (the paper's SRGAN), needs
    # `vgg_weights`; "domain": features of the network the harness hands over (offline stand-in).
    content_loss: Literal["mse", "domain", "vgg54"] = "domain"
    # Path of torchvision's VGG19 state dict (e.g. vgg19-dcbb9e9d.pth); only for "vgg54".
    vgg_weights: str = ""
    # Multiplies a feature-space content loss: another network's features have another magnitude
    # than VGG's (scaled by 1/12.75 to match the MSE's), and adv_weight was tuned against that one.
    content_scale: Annotated[float, Field(gt=0)] = 1.0
    # Fraction of the generator steps that train G on the MSE alone, D untouched (the paper's 10⁶
    # SRResNet updates before 2·10⁵ GAN updates would be 0.83; a short budget needs a longer GAN).
    pretrain_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.5
    # Fraction of the adversarial phase after which both learning rates fall tenfold (paper: half).
    lr_drop: Annotated[float, Field(ge=0, le=1)] = 0.5


def build_discriminator(shape: tuple[int, ...], ndf: int) -> nn.Sequential:
    """D of Figure 4 for HR images of `shape` (C, H, W) → one logit each."""
    channels, height, width = shape
    layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 3, 1, 1), nn.LeakyReLU(0.2)]  # no BN
    in_width = ndf
    for i, multiple in enumerate([1, 2, 2, 4, 4, 8, 8]):
        stride = 2 if i % 2 == 0 else 1
        out_width = ndf * multiple
        layers += [
            nn.Conv2d(in_width, out_width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_width),
            nn.LeakyReLU(0.2),
        ]
        if stride == 2:  # kernel 3, padding 1: a side s becomes ⌈s/2⌉ (28 → 14 → 7 → 4 → 2)
            height, width = (height + 1) // 2, (width + 1) // 2
        in_width = out_width
    flat = in_width * height * width
    layers += [nn.Flatten(), nn.Linear(flat, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 1)]
    return nn.Sequential(*layers)


class VGG54(nn.Module):
    """φ_5,4 of the paper: VGG19's features up to the ReLU after conv5_4, rescaled by 1/12.75, of
    [-1, 1] images (grey ones repeated to RGB) normalised as for ImageNet."""

    def __init__(self, vgg: torchvision.models.VGG) -> None:
        super().__init__()
        self.features = vgg.features[:36]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return self.features(((x + 1) / 2 - self.mean) / self.std) / 12.75


def load_vgg54(path: str) -> VGG54:
    """VGG54 with torchvision's VGG19 weights from the state-dict file `path`."""
    if not path:
        raise UsageError(
            "srgan: content_loss = 'vgg54' needs vgg_weights = '<path of torchvision's ImageNet "
            "VGG19 state dict, e.g. vgg19-dcbb9e9d.pth>'; no installed package ships those weights "
            "offline, so set vgg_weights, or use content_loss = 'domain' (the default) or 'mse'"
        )
    if not Path(path).is_file():
        raise UsageError(f"srgan: vgg_weights file '{path}' does not exist")
    # The random initialisation is overwritten; forking keeps it from shifting the seeded stream.
    with torch.random.fork_rng(devices=[]):
        vgg = torchvision.models.vgg19(weights=None)
    try:
        vgg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise UsageError(f"srgan: vgg_weights '{path}' is not a VGG19 state dict: {exc}") from exc
    return VGG54(vgg).eval().requires_grad_(False)


@VARIANTS.register("srgan")
class SRGAN(Variant):
    family = "superres"
    paper = "Ledig et al. 2017, Photo-Realistic Single Image Super-Resolution Using a GAN"
    Config = SRGANConfig
    capabilities = frozenset({"upscales", "critic"})

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        if cfg is not None and cfg.content_loss == "vgg54":
            if data.shape[0] not in (1, 3):
                return (
                    f"content_loss 'vgg54' takes grey or RGB images, not {data.shape[0]} channels"
                )
            if not cfg.vgg_weights or not Path(cfg.vgg_weights).is_file():
                return (f"content_loss 'vgg54' needs vgg_weights, the file of torchvision's "
                        f"ImageNet VGG19 state dict (got '{cfg.vgg_weights}'); no package ships it "
                        "offline, so give its path, or use content_loss 'domain' or 'mse'")  # fmt: skip
        return upscaling_problem(data)

    def __init__(self, cfg: SRGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.G = build_generator(data, cfg.n_blocks, cfg.width).to(device)
        self.D = build_discriminator(data.shape, cfg.ndf).to(device)  # PyTorch's default init
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        # The frozen content network lives in a dict, not in an attribute: checkpoints, networks()
        # and the harness's train/eval switching see only nn.Module attributes, and must not see it.
        self._content: dict[str, Any] = {}
        if cfg.content_loss == "vgg54":
            net = load_vgg54(cfg.vgg_weights).to(device)
            self._content = {"net": net, "name": f"vgg54:{Path(cfg.vgg_weights).name}"}

    @property
    def wants_content_network(self) -> bool:
        """True when the harness must hand over a feature network with `set_content_network`."""
        return self.cfg.content_loss == "domain"

    def set_content_network(self, net: nn.Module, name: str) -> None:
        """The frozen network of the "domain" content loss: HR images in [-1, 1] → feature maps."""
        if not self.wants_content_network:
            raise ValueError(f"srgan: content_loss = '{self.cfg.content_loss}' takes no network")
        self._content = {"net": net.eval().requires_grad_(False), "name": name}

    @property
    def content_network_name(self) -> str:
        if self.cfg.content_loss == "mse":
            return "pixels"
        return self._content.get("name", "domain (set_content_network not called)")

    def set_budget(self, gen_steps: int) -> None:
        super().set_budget(gen_steps)
        self.pretrain_steps = round(self.cfg.pretrain_fraction * gen_steps)
        drop_at = self.pretrain_steps + round(self.cfg.lr_drop * (gen_steps - self.pretrain_steps))

        def factor(step: int) -> float:
            return 0.1 if step >= drop_at else 1.0

        # The schedulers' step count (last_epoch) is also the phase clock, restored with them.
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, factor)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, factor)

    @property
    def z_dim(self) -> int:
        return 0  # no latent: the LR image is G's only input

    @torch.no_grad()
    def translate(self, source: torch.Tensor) -> torch.Tensor:
        return self.G(source)

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return gan_discriminator_loss(real_out, fake_out)

    def content_loss(self, fake: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """G's content loss (section 2.2.1): MSE in pixels or in the content network's features."""
        if self.cfg.content_loss == "mse":
            return F.mse_loss(fake, hr)
        net = self._content["net"]
        with torch.no_grad():
            target = net(hr)
        return self.cfg.content_scale * F.mse_loss(net(fake), target)

    def train_step(
        self, next_real: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        if not hasattr(self, "sched_G"):
            raise RuntimeError(
                "srgan: call set_budget(gen_steps) before training: its MSE pretraining and "
                "learning-rate drop are fractions of the budget"
            )
        if self.wants_content_network and "net" not in self._content:
            raise RuntimeError(
                "srgan: content_loss = 'domain' needs its feature network, but "
                "set_content_network(net, name) was not called before training"
            )
        lr, hr = next_real()
        step = self.sched_G.last_epoch  # generator steps taken so far: the phase clock
        fake = self.G(lr)
        g_loss = mse = F.mse_loss(fake, hr)  # pretraining: G is SRResNet, and D waits
        losses: dict[str, float] = {}
        if step >= self.pretrain_steps:
            if step == self.pretrain_steps and step > 0:
                # The paper starts SRGAN from SRResNet's weights, not its optimiser: Adam's moments
                # of MSE gradients would mis-scale the first steps on a loss of another size.
                self.opt_G.state.clear()

            # D: HR images against G's upscaled ones.
            self.D.requires_grad_(True)
            d_loss = self.critic_loss(self.critic(hr), self.critic(fake.detach()))
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_D.step()

            # G: the perceptual loss, content + adv_weight · (-log D(G(I_LR))) (section 2.2).
            self.D.requires_grad_(False)
            adversarial = gan_generator_loss_nonsaturating(self.critic(fake))
            content = self.content_loss(fake, hr)
            g_loss = content + self.cfg.adv_weight * adversarial
            losses = {
                f"loss/content/{self.content_network_name}": content.item(),
                "loss/generator": adversarial.item(),
                "loss/critic": d_loss.item(),
            }
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        with warnings.catch_warnings():
            # D's scheduler keeps counting while D waits; torch would warn that D never stepped.
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`")
            self.step_schedulers()
        return {"loss/mse": mse.item(), **losses}
