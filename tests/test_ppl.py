"""Perceptual path length: closed-form cases, agreement with torchmetrics where both apply, and
the distance in the domain classifier's layers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bench.backbones.domain import LeNet
from bench.metrics.ppl import LayerDistance, filtered_mean, lerp, path_distances, slerp


def squared_l2(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    return (x0 - x1).flatten(1).square().sum(dim=1)


def pairs(n: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, n, dim, generator=g, dtype=torch.float64)
    return a, b, torch.rand(n, generator=g, dtype=torch.float64)


def test_a_generator_that_ignores_its_input_has_path_length_zero():
    a, b, t = pairs(50, 4)
    constant = torch.full((1, 1, 3, 3), 0.25, dtype=torch.float64)

    def images(z: torch.Tensor) -> torch.Tensor:
        return constant.expand(len(z), -1, -1, -1)

    for interpolate in (lerp, slerp):
        d = path_distances(images, squared_l2, a, b, t, 1e-4, interpolate, 16)
        assert filtered_mean(d) == 0.0


def test_a_linear_map_has_the_hand_computed_path_length_in_lerp():
    # images(w) = A w on a 3-pixel image; every pair differs by d = (1, 2), so each distance is
    # |A d|² / ε² · ε² = |(1, 4, 3)|² = 26 whatever the start and t.
    A = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    start, _, t = pairs(40, 2)
    end = start + torch.tensor([1.0, 2.0], dtype=torch.float64)

    def images(w: torch.Tensor) -> torch.Tensor:
        return (w @ A.T).reshape(len(w), 1, 1, 3)

    d = path_distances(images, squared_l2, start, end, t, 1e-4, lerp, 7)
    assert len(d) == 40
    assert filtered_mean(d) == pytest.approx(26.0, rel=1e-6)


def test_slerp_moves_at_the_angle_between_the_ends():
    # The identity map on unit vectors: e1 → e2 is a quarter circle, so the speed is π/2 and the
    # path length (π/2)², at every t.
    e1 = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64).expand(5, -1)
    e2 = torch.tensor([[0.0, 3.0, 0.0]], dtype=torch.float64).expand(5, -1)  # length is ignored
    t = torch.linspace(0.0, 0.9, 5, dtype=torch.float64)
    d = path_distances(lambda z: z[:, None, None], squared_l2, e1, e2, t, 1e-4, slerp, 5)
    assert d.tolist() == pytest.approx([(math.pi / 2) ** 2] * 5, rel=1e-6)
    mid = slerp(e1[:1], e2[:1], torch.tensor([0.5], dtype=torch.float64))
    assert mid.flatten().tolist() == pytest.approx([math.sqrt(0.5), math.sqrt(0.5), 0.0])


def test_the_percentile_filter_drops_the_extremes_only():
    d = torch.arange(1, 101, dtype=torch.float64)  # 1..100: the 1st percentile is 1, the 99th 99
    assert filtered_mean(d) == pytest.approx(sum(range(1, 100)) / 99)
    d[-1] = 1e9  # an outlier does not move the mean
    assert filtered_mean(d) == pytest.approx(sum(range(1, 100)) / 99)


class _Generator(nn.Module):
    """torchmetrics' generator interface over a small conv net: images in [0, 255], latents
    handed out in a fixed order (its first `sample` call gives the starts, the second the ends)."""

    def __init__(self, latents: list[torch.Tensor]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)),
                                 nn.Conv2d(1, 1, 3, padding=1), nn.Tanh()).double()  # fmt: skip
        self.latents = list(latents)

    def images(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.net(z) + 1) * 127.5

    def sample(self, num_samples: int) -> torch.Tensor:
        return self.latents.pop(0)


def test_matches_torchmetrics_where_both_apply():
    from torchmetrics.functional.image import perceptual_path_length

    a, b, _ = pairs(200, 8, seed=3)
    torch.manual_seed(1)
    distance = LayerDistance(LeNet(1, 10).double())
    gen = _Generator([a, b])
    expected, _, _ = perceptual_path_length(
        gen, num_samples=200, batch_size=64, interpolation_method="lerp", epsilon=1e-4,
        resize=None, lower_discard=0.01, upper_discard=0.99, sim_net=distance,
    )  # fmt: skip
    zeros = torch.zeros(200, dtype=torch.float64)
    ours = filtered_mean(path_distances(gen.images, distance, a, b, zeros, 1e-4, lerp, 64))
    assert ours > 0
    assert ours == pytest.approx(float(expected), rel=1e-6)


def test_the_layer_distance_is_zero_on_equal_images_and_adds_up_channels():
    torch.manual_seed(0)
    distance = LayerDistance(LeNet(1, 10))
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    y = torch.rand(4, 1, 28, 28) * 2 - 1
    assert distance(x, x).abs().max() == 0
    assert (distance(x, y) > 0).all()
    per_channel = LayerDistance(LeNet(1, 10), per_channel=True)
    per_channel.net.load_state_dict(distance.net.state_dict())
    both = per_channel(torch.cat([x, y], 1), torch.cat([y, x], 1))
    assert both.tolist() == pytest.approx((distance(x, y) + distance(y, x)).tolist(), rel=1e-6)


def test_the_ablation_section_tests_each_step_against_the_one_before():
    import pandas as pd

    from bench import ablation_report

    # FID here: A 10, B 6 (better, as published), C 6.1 (no change), D 9 (worse; published better).
    means = {"A": 10.0, "B": 6.0, "C": 6.1, "D": 9.0}
    rows = [
        {"variant": v, "dataset": "mnist5k", "seed": s, "status": "ok",
         "fid/lenet-mnist5k": m + 0.1 * s, "ppl_z/lenet-mnist5k": 50.0 + s,
         "ppl_w/lenet-mnist5k": float("nan") if v == "A" else 20.0 + s}
        for v, m in means.items() for s in range(3)
    ]  # fmt: skip
    cfg = {"metrics": ["fid", "ppl_z", "ppl_w"],
           "report": {"ablation": ["A", "B", "C", "D"], "ablation_reference": [8.0, 5.0, 4.9, 4.8],
                      "ablation_reference_source": "paper FID"}}  # fmt: skip
    text = "\n".join(ablation_report.section(cfg, pd.DataFrame(rows)))
    assert "### mnist5k: `fid/lenet-mnist5k`" in text
    assert "`A` → `B`: published: better; held" in text
    assert "`B` → `C`: published: better; no significant change here" in text
    assert "`C` → `D`: published: better; reversed here" in text
    assert "Of the 3 steps that improved the published value, 1 improved it here" in text
    assert "`A` in Z 51 ± " in text and "`D` in W 21 ± " in text
    assert ablation_report.section({**cfg, "report": {}}, pd.DataFrame(rows)) == []
