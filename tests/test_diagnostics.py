import math

import pytest
import torch
from torch import nn

from bench import diagnostics
from variants.losses import wasserstein_critic_loss


def test_clip_saturation_counts_weights_at_the_layer_maximum():
    layer = nn.Linear(4, 2)  # 8 weights + 2 biases
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.01, -0.01, 0.005, 0.0], [-0.01, 0.002, 0.0099, 0.003]]))
        layer.bias.copy_(torch.tensor([0.01, -0.004]))
    # At or within 1% of 0.01: 0.01, -0.01, -0.01, 0.0099, bias 0.01 → 5 of 10.
    assert diagnostics.clip_saturation(nn.Sequential(layer)) == pytest.approx(0.5)


def test_clip_saturation_is_per_layer():
    a, b = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        a.weight.fill_(0.1), a.bias.fill_(0.0)
        b.weight.fill_(5.0), b.bias.fill_(5.0)
    # Layer a: only its weight is at its maximum (1 of 2); layer b: both (2 of 2) → 3 of 4.
    assert diagnostics.clip_saturation(nn.Sequential(a, b)) == pytest.approx(0.75)


def chain(scale: float, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(2, 2)
        with torch.no_grad():
            lin.weight.copy_(scale * torch.eye(2))
            lin.bias.zero_()
        layers += [lin, nn.ReLU()]
    out = nn.Linear(2, 1)
    with torch.no_grad():
        out.weight.fill_(1.0)
        out.bias.zero_()
    return nn.Sequential(*layers, out)


@pytest.mark.parametrize("scale", [2.0, 0.5, 1e-3])
def test_activation_gradient_norms_scale_by_the_layer_gain(scale):
    # With positive inputs every ReLU passes, so the gradient at hidden layer l is scale^(L-l)
    # times the gradient at the last hidden layer: norms shrink or grow by `scale` per layer.
    depth = 12
    real = torch.rand(16, 2) + 0.1
    fake = torch.rand(16, 2) + 0.1
    norms = diagnostics.activation_grad_norms(
        chain(scale, depth), wasserstein_critic_loss, real, fake
    )
    assert len(norms) == depth
    for lower, upper in zip(norms, norms[1:], strict=False):
        assert lower / upper == pytest.approx(scale, rel=1e-6)  # weights set in float32
    # Decades per layer, input side first: the norm changes by 1/scale per layer going up.
    assert diagnostics.log10_slope(norms) == pytest.approx(-math.log10(scale), rel=1e-6)


def test_activation_gradient_norms_do_not_underflow_for_tiny_clipped_weights():
    norms = diagnostics.activation_grad_norms(
        chain(1e-4, 12), wasserstein_critic_loss, torch.rand(8, 2) + 0.1, torch.rand(8, 2) + 0.5
    )
    assert all(n > 0 for n in norms)  # 1e-44 and below: zero in float32, representable in float64


def test_weight_histogram_covers_every_parameter():
    net = chain(0.5, 3)
    counts, edges = diagnostics.weight_histogram(net, bins=11)
    assert counts.sum() == sum(p.numel() for p in net.parameters())
    assert edges[0] == -edges[-1] == pytest.approx(-1.0)
