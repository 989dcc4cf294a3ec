"""MuseGAN: Dong, Hsiao, Yang & Yang, "MuseGAN: Multi-track Sequential Generative Adversarial
Networks for Symbolic Music Generation and Accompaniment", AAAI 2018.

A sample is a multi-track piano roll [tracks, bars, steps, pitches] in {-1, 1}. Each bar is drawn by
a bar generator from a time-independent latent (the same for every bar) and a time-dependent one
(one per bar, made by a temporal generator from a single vector). `sharing` picks the paper's three
ways of splitting those latents between tracks:

- "jamming":  per track, a private z_i and z_i,t, its own generator and its own critic;
- "composer": shared z and z_t only, one generator that draws every track, one critic;
- "hybrid":   one bar generator per track fed [z, z_t, z_i, z_i,t], one critic on all tracks.

Training is WGAN-GP (Gulrajani et al. 2017), which the paper uses with n_critic = 5. Each latent
part has `z_part` entries, so z_dim = parts · z_part, with the parts laid out in z as
[z, z_t] (shared, composer and hybrid) followed by [z_i, z_i,t] for each track (jamming and hybrid).
Widths are scaled down so a step runs on a CPU; the layer pattern follows the paper's: G upsamples
time first, then pitch by octave; D reduces pitch first, then time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from bench.datasets.base import DataSpec
from bench.errors import UsageError
from bench.registry import VARIANTS
from bench.variant import Betas, Variant, VariantConfig
from variants.losses import gradient_penalty, wasserstein_critic_loss, wasserstein_generator_loss


class MuseGANConfig(VariantConfig):
    # Which of the paper's multi-track models: private latents and critics per track ("jamming"),
    # shared latents and one generator ("composer"), or both kinds of latent ("hybrid").
    sharing: Literal["jamming", "composer", "hybrid"] = "hybrid"
    # Entries in each latent part (z, z_t, z_i, z_i,t); the authors' code uses 32 per part.
    z_part: Annotated[int, Field(gt=0)] = 32
    # Base channel width of every generator. Small so a training step stays near 100 ms on one CPU
    # thread (batch 32, hybrid); at 64 it took ~3× as long.
    g_channels: Annotated[int, Field(gt=0)] = 16
    # Base channel width of every critic (jamming has one per track), scaled down likewise.
    d_channels: Annotated[int, Field(gt=0)] = 16
    # Critic steps per generator step (the paper, following WGAN-GP's Algorithm 1).
    n_critic: Annotated[int, Field(gt=0)] = 5
    # Adam step size, as in a widely used PyTorch reimplementation trained on JSB chorales.
    lr: Annotated[float, Field(gt=0)] = 1e-3
    # Adam (β1, β2), from the same reimplementation (WGAN-GP's toy setting).
    betas: Betas = [0.5, 0.9]
    # λ, weight of the gradient penalty (WGAN-GP's Algorithm 1).
    gp_weight: Annotated[float, Field(ge=0)] = 10.0


def latent_parts(sharing: str, tracks: int) -> int:
    """How many latent parts of `z_part` entries each the model of `sharing` draws."""
    return {"jamming": 2 * tracks, "composer": 2, "hybrid": 2 + 2 * tracks}[sharing]


class TemporalGenerator(nn.Module):
    """One latent vector [N, z_part] → a latent per bar [N, bars, z_part], by a transposed
    convolution over time as in the paper."""

    def __init__(self, z_part: int, bars: int, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(z_part, channels), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Unflatten(1, (channels, 1)),
            nn.ConvTranspose1d(channels, z_part, bars), nn.BatchNorm1d(z_part), nn.ReLU(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).transpose(1, 2)


# Every convolution in G and D below has stride = kernel (the blocks it reads do not overlap),
# so each is one matrix product per block. Written that way they compute the same map as Conv2d /
# ConvTranspose2d, but a CPU training step ran about twice as fast: PyTorch's strided (transposed)
# convolutions over pitch, and the gradient penalty's double backward through them, were slow.
class BlockDown(nn.Module):
    """Conv2d(c_in, c_out, kernel, stride=kernel): each kh×kw block of the input → one position."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        self.kernel = kernel
        self.linear = nn.Linear(c_in * kernel[0] * kernel[1], c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (b, c, h, w), (kh, kw) = x.shape, self.kernel
        x = x.reshape(b, c, h // kh, kh, w // kw, kw).permute(0, 2, 4, 1, 3, 5)
        return self.linear(x.reshape(b, h // kh, w // kw, c * kh * kw)).permute(0, 3, 1, 2)


class BlockUp(nn.Module):
    """ConvTranspose2d(c_in, c_out, kernel, stride=kernel): each position → one kh×kw block."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        self.kernel = kernel
        self.linear = nn.Linear(c_in, c_out * kernel[0] * kernel[1], bias=False)
        self.bias = nn.Parameter(torch.zeros(c_out))  # one per channel, as ConvTranspose2d's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (b, _, h, w), (kh, kw) = x.shape, self.kernel
        y = self.linear(x.permute(0, 2, 3, 1)).reshape(b, h, w, -1, kh, kw)
        y = y.permute(0, 3, 1, 4, 2, 5).reshape(b, -1, h * kh, w * kw)
        return y + self.bias[:, None, None]


def up(c_in: int, c_out: int, kernel: tuple[int, int]) -> list[nn.Module]:
    """Upsampling by `kernel`, then BN and ReLU."""
    return [BlockUp(c_in, c_out, kernel), nn.BatchNorm2d(c_out), nn.ReLU()]


def build_bar_generator(
    in_dim: int, out_tracks: int, steps: int, pitches: int, ch: int
) -> nn.Sequential:
    """A latent [M, in_dim] → one bar [M, out_tracks, steps, pitches] in [-1, 1]: time is upsampled
    first (three doublings), then pitch by octave (pitches/12 octaves, then 12 semitones)."""
    return nn.Sequential(
        nn.Linear(in_dim, 2 * ch * steps // 8), nn.BatchNorm1d(2 * ch * steps // 8), nn.ReLU(),
        nn.Unflatten(1, (2 * ch, steps // 8, 1)),
        *up(2 * ch, ch, (2, 1)), *up(ch, ch, (2, 1)), *up(ch, ch, (2, 1)),
        *up(ch, ch, (1, pitches // 12)),
        BlockUp(ch, out_tracks, (1, 12)), nn.Tanh(),
    )  # fmt: skip


class Generator(nn.Module):
    """z [N, z_dim] → piano rolls [N, tracks, bars, steps, pitches], split as the module says."""

    def __init__(self, cfg: MuseGANConfig, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.sharing, self.z_part = cfg.sharing, cfg.z_part
        self.tracks, self.bars, steps, pitches = shape
        z_part, ch = cfg.z_part, cfg.g_channels
        if self.sharing != "jamming":
            self.shared_temporal = TemporalGenerator(z_part, self.bars, ch)
        if self.sharing != "composer":
            self.private_temporal = nn.ModuleList(
                TemporalGenerator(z_part, self.bars, ch) for _ in range(self.tracks)
            )
        # Each mode feeds its bar generators only the parts it has: 2·z_part entries for jamming
        # and composer, 4·z_part for hybrid, rather than padding one mode to match another.
        in_dim = (4 if self.sharing == "hybrid" else 2) * z_part
        # Composer: one bar generator drawing every track; otherwise one per track.
        count, out_tracks = (1, self.tracks) if self.sharing == "composer" else (self.tracks, 1)
        self.bar_generators = nn.ModuleList(
            build_bar_generator(in_dim, out_tracks, steps, pitches, ch) for _ in range(count)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = len(z)
        parts = list(z.view(n, -1, self.z_part).unbind(1))

        def per_bar(fixed: torch.Tensor, temporal: nn.Module, z_t: torch.Tensor) -> torch.Tensor:
            # [N, bars, 2·z_part]: the time-independent part repeated beside each bar's own.
            return torch.cat([fixed[:, None].expand(-1, self.bars, -1), temporal(z_t)], dim=2)

        shared = []
        if self.sharing != "jamming":
            shared = [per_bar(parts.pop(0), self.shared_temporal, parts.pop(0))]
        if self.sharing == "composer":
            bars = self.bar_generators[0](shared[0].flatten(0, 1))  # [N·bars, tracks, S, P]
            return bars.unflatten(0, (n, self.bars)).transpose(1, 2)
        tracks = []
        for i, bar_generator in enumerate(self.bar_generators):
            private = per_bar(parts[2 * i], self.private_temporal[i], parts[2 * i + 1])
            latent = torch.cat([*shared, private], dim=2).flatten(0, 1)
            tracks.append(bar_generator(latent)[:, 0].unflatten(0, (n, self.bars)))
        return torch.stack(tracks, dim=1)


def build_critic(in_tracks: int, shape: tuple[int, ...], ch: int) -> nn.Sequential:
    """Piano rolls [B, in_tracks, bars, steps, pitches] → a score [B, 1]. Bars are joined in time;
    pitch is reduced first (semitones within an octave, then octaves), then time. No normalisation:
    the gradient penalty is per sample (WGAN-GP, section 4)."""
    _, bars, steps, pitches = shape
    act = nn.LeakyReLU(0.2)
    return nn.Sequential(
        nn.Flatten(2, 3),  # [B, k, bars·steps, pitches]
        BlockDown(in_tracks, ch, (1, 12)), act,
        BlockDown(ch, ch, (1, pitches // 12)), act,
        BlockDown(ch, ch, (4, 1)), act,
        BlockDown(ch, 2 * ch, (2, 1)), act,
        nn.Flatten(), nn.Linear(2 * ch * bars * steps // 8, 1),
    )  # fmt: skip


class TrackCritics(nn.Module):
    """Jamming's critics, one per track, each seeing only its own track. The score is their sum, so
    a Wasserstein loss on it is the sum of the per-track losses; the gradient penalty is not (see
    `track_gradient_penalty`)."""

    def __init__(self, critics: list[nn.Module]) -> None:
        super().__init__()
        self.critics = nn.ModuleList(critics)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(critic(x[:, i : i + 1]) for i, critic in enumerate(self.critics))


def track_gradient_penalty(
    critics: TrackCritics, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """Σ_i E[(‖∇D_i(x̂_i)‖₂ - 1)²]: each track's critic is held to norm 1 on its own track, not the
    summed score on all tracks (whose gradient norm would be √Σ‖∇D_i‖²).

    Critic i sees only track i, so the gradient of the summed score with respect to track i is
    ∇D_i: one backward pass gives every track's gradient. `alpha` is [B, 1, ...], as in
    `gradient_penalty`."""
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critics(mixed).sum(), mixed, create_graph=True)
    norms = grad.flatten(2).norm(2, dim=2)  # [B, tracks]
    return ((norms - 1) ** 2).mean(0).sum()


@VARIANTS.register("musegan")
class MuseGAN(Variant):
    family = "wasserstein"
    paper = "Dong et al. 2018, MuseGAN: Multi-track Sequential GANs for Symbolic Music Generation"
    Config = MuseGANConfig
    estimates_wasserstein = True
    capabilities = frozenset({"samples", "critic"})
    data_kinds = ("music",)

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        shape = data.shape
        if len(shape) != 4:
            return f"musegan needs piano rolls of shape (tracks, bars, steps, pitches), not {shape}"
        if shape[2] % 8:
            return f"musegan needs steps per bar divisible by 8 (G doubles time 3 times), not {shape[2]}"
        if shape[3] % 12:
            return f"musegan needs pitches divisible by 12 (whole octaves), not {shape[3]}"
        return None

    def __init__(self, cfg: MuseGANConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        if problem := self.data_problem(data, cfg):
            raise UsageError(problem)
        tracks = data.shape[0]
        self.G = Generator(cfg, data.shape).to(device)
        if cfg.sharing == "jamming":
            critics = [build_critic(1, data.shape, cfg.d_channels) for _ in range(tracks)]
            self.D = TrackCritics(critics).to(device)
        else:
            self.D = build_critic(tracks, data.shape, cfg.d_channels).to(device)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    @property
    def z_dim(self) -> int:
        return latent_parts(self.cfg.sharing, self.data.shape[0]) * self.cfg.z_part

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return wasserstein_critic_loss(real_out, fake_out)

    def penalty(self, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        if isinstance(self.D, TrackCritics):
            return track_gradient_penalty(self.D, real, fake, alpha)
        return gradient_penalty(self.D, real, fake, alpha)

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        # Critic: n_critic steps of the Wasserstein loss plus λ times the gradient penalty.
        self.D.requires_grad_(True)
        for _ in range(self.cfg.n_critic):
            real = next_real()
            z = torch.randn(len(real), self.z_dim, device=self.device)
            with torch.no_grad():  # the critic's step does not move G: no graph through it
                fake = self.G(z)
            # α ~ U(0, 1) per sample (WGAN-GP, Algorithm 1); a widely used JSB reimplementation
            # draws it from a normal, which puts x̂ outside the segment between real and fake.
            alpha = torch.rand(len(real), *([1] * (real.dim() - 1)), device=self.device)
            w_loss = self.critic_loss(self.D(real), self.D(fake))
            penalty = self.penalty(real, fake, alpha)
            d_loss = w_loss + self.cfg.gp_weight * penalty
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_D.step()

        # Generator: one step against the frozen critic.
        self.D.requires_grad_(False)
        z = torch.randn(len(real), self.z_dim, device=self.device)
        g_loss = wasserstein_generator_loss(self.D(self.G(z)))
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        return {
            "loss/critic": w_loss.item(),
            "loss/gradient_penalty": penalty.item(),
            "loss/generator": g_loss.item(),
        }
