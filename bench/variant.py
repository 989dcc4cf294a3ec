"""The contract between the harness and a variant: the harness owns the loop, a variant owns its step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from bench.datasets.base import DataSpec

# Strict: a TOML string where a number is expected is an error, never silently converted.
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

Betas = Annotated[list[float], Field(min_length=2, max_length=2)]


class VariantConfig(BaseModel):
    """Base of every variant's typed configuration; suite files override its fields by name."""

    model_config = STRICT


class Variant:
    """One model: builds its networks (G and its critic D for a GAN), and performs one training step.

    Subclasses set `family`, `paper`, `Config`, and implement `train_step` and `critic_loss`.
    All randomness inside `train_step` comes from torch's global generator, which the harness seeds.
    """

    family: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    Config: ClassVar[type[VariantConfig]] = VariantConfig
    # True when -critic_loss estimates a Wasserstein distance (WGAN family); the harness then logs it.
    estimates_wasserstein: ClassVar[bool] = False
    # True when G and D are conditioned on class labels (cGAN): `next_real()` then returns
    # (samples, labels), and `generate` and `critic` take the labels too.
    conditional: ClassVar[bool] = False
    # What the model can do, matched against what a suite's task needs (bench/tasks): "samples"
    # (noise → sample), "translates" (source image → target image), "critic" (has a critic D whose
    # diagnostics the harness logs). A task refuses a variant that lacks what it needs.
    capabilities: ClassVar[frozenset[str]] = frozenset({"samples", "critic"})
    # True when the model samples with dropout at test time too (Pix2Pix: dropout is its noise), so
    # evaluation in eval mode (eval.batch_norm = "running") keeps its dropout layers on.
    dropout_at_test: ClassVar[bool] = False

    G: nn.Module
    D: nn.Module

    def __init__(self, cfg: VariantConfig, data: DataSpec, device: torch.device) -> None:
        self.cfg = cfg
        self.data = data
        self.device = device

    @classmethod
    def data_problem(cls, data: DataSpec, cfg: VariantConfig | None = None) -> str | None:
        """Why the networks of config `cfg` (default: the defaults) cannot be built for `data`
        (for example an image size they cannot take), or None; checked before a run starts."""
        return None

    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    def set_budget(self, gen_steps: int) -> None:
        """Told once by the harness before training (or resuming): the suite's generator-step
        budget, for schedules over it. Subclasses that decay a learning rate build schedulers here."""
        self.gen_steps = gen_steps

    def step_schedulers(self) -> None:
        """Advance every learning-rate scheduler the variant holds by one generator step (none
        exist until `set_budget` built them: a bare step keeps its rates constant)."""
        for obj in vars(self).values():
            if isinstance(obj, torch.optim.lr_scheduler.LRScheduler):
                obj.step()

    def train_step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, float]:
        """One generator update (and the critic updates before it); returns scalar losses by name."""
        raise NotImplementedError

    def critic_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        """The critic's adversarial loss on given outputs, without penalties (used for diagnostics)."""
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples for latents `z` (and `labels`, for a conditional variant), in the data's range."""
        return self.G(z)

    @torch.no_grad()
    def translate(self, source: torch.Tensor) -> torch.Tensor:
        """Outputs for source images (for a variant that "translates"), in the data's range."""
        raise NotImplementedError

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's raw scores for samples `x` (and `labels`, for a conditional variant)."""
        return self.D(x)

    def critic_network(self, domain: str = "") -> nn.Module:
        """The critic whose weights the diagnostics inspect: `D`, or the critic of `domain`
        ("A", "B") of a translation model with one per domain (`D_A`, `D_B` unless it says)."""
        return getattr(self, f"D_{domain}" if domain else "D")

    def state_dict(self) -> dict[str, Any]:
        """State of every network, optimiser and learning-rate scheduler the variant holds, for
        checkpoints."""
        stateful = nn.Module | torch.optim.Optimizer | torch.optim.lr_scheduler.LRScheduler
        return {
            name: obj.state_dict()
            for name, obj in sorted(vars(self).items())
            if isinstance(obj, stateful)
        }

    def networks(self) -> dict[str, dict[str, torch.Tensor]]:
        """The final weights of every network the variant holds, by attribute name."""
        return {name: m.state_dict() for name, m in sorted(vars(self).items())
                if isinstance(m, nn.Module)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, obj_state in state.items():
            getattr(self, name).load_state_dict(obj_state)
