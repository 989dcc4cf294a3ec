"""Training-stability diagnostics of a critic: weight pile-up, weight histogram, gradient norms by depth."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh)
SATURATION_TOLERANCE = 0.01  # a weight within 1% of its layer's largest |w| counts as saturated


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The layers that own parameters (Linear, Conv, …), in forward order."""
    return [m for m in model.modules() if list(m.parameters(recurse=False))]


def clip_saturation(model: nn.Module) -> float:
    """Fraction of parameters whose |w| is within 1% of the largest |w| of their layer.

    For a critic clipped to [-c, c] that largest value is c, so this is the mass piled up at ±c; the
    same definition applies unchanged to critics without a bound (gradient penalty).
    """
    saturated, total = 0, 0
    with torch.no_grad():
        for layer in weighted_layers(model):
            w = torch.cat([p.detach().abs().flatten() for p in layer.parameters(recurse=False)])
            top = w.max()
            if top > 0:
                saturated += int((w >= (1 - SATURATION_TOLERANCE) * top).sum())
            total += w.numel()
    return saturated / total if total else float("nan")


def weight_histogram(model: nn.Module, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Histogram (counts, edges) of all parameters of `model`, over ±(largest |w|)."""
    with torch.no_grad():
        w = torch.cat([p.detach().flatten().double().cpu() for p in model.parameters()]).numpy()
    bound = float(np.abs(w).max()) or 1.0
    counts, edges = np.histogram(w, bins=bins, range=(-bound, bound))
    return counts, edges


def activation_grad_norms(
    critic: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
) -> list[float]:
    """‖∂loss/∂h_l‖ for the output h_l of every hidden activation layer l, input side first.

    This is the quantity of Gulrajani et al. 2017, Figure 1 (left). The norm is taken over the whole
    batch of real and generated samples fed through the critic together. It is computed in float64
    on a copy of the critic: through a deep clipped critic the norms reach 1e-40 and below, which
    float32 rounds to zero.
    """
    critic = copy.deepcopy(critic).double()
    real, fake = real.double(), fake.double()
    outputs: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
        for m in critic.modules()
        if isinstance(m, ACTIVATIONS)
    ]
    try:
        with torch.enable_grad():
            # The input requires grad so the graph exists even when the critic's weights are frozen.
            scores = critic(torch.cat([real, fake]).requires_grad_(True))
            loss = loss_fn(scores[: len(real)], scores[len(real) :])
            grads = torch.autograd.grad(loss, outputs, allow_unused=True)
    finally:
        for h in hooks:
            h.remove()
    return [float(g.norm()) if g is not None else 0.0 for g in grads]


def log10_slope(values: list[float]) -> float:
    """Least-squares slope of log10(values) against layer index: decades of growth per layer."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or not np.all(v > 0) or not np.all(np.isfinite(v)):
        return float("nan")
    return float(np.polyfit(np.arange(len(v)), np.log10(v), 1)[0])
