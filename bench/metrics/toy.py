"""Metrics for 2-D samples: mode coverage (VEEGAN/PacGAN) and the energy distance.

Mode coverage: a generated sample is high quality if it lies within 3 standard deviations of its
nearest mode; a mode is captured if it is the nearest mode of at least one high-quality sample.
"""

from __future__ import annotations

import torch

from bench.datasets.base import Dataset
from bench.metrics.base import Metric, NotApplicable
from bench.registry import METRICS

HQ_STDS = (
    3.0  # a sample within this many mode standard deviations of its nearest mode is high quality
)


def _assign_modes(fake: torch.Tensor, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-mode index of every sample and whether it is high quality."""
    if dataset.modes is None or dataset.mode_std is None:
        raise NotApplicable(f"dataset '{dataset.name}' has no modes")
    dist = torch.cdist(fake.double(), dataset.modes.double())
    nearest_dist, nearest = dist.min(dim=1)
    return nearest, nearest_dist <= HQ_STDS * dataset.mode_std


def modes_captured(real: torch.Tensor, fake: torch.Tensor, dataset: Dataset) -> float:
    nearest, hq = _assign_modes(fake, dataset)
    return float(nearest[hq].unique().numel())


def hq_fraction(real: torch.Tensor, fake: torch.Tensor, dataset: Dataset) -> float:
    _, hq = _assign_modes(fake, dataset)
    return float(hq.double().mean())


def mode_kl(real: torch.Tensor, fake: torch.Tensor, dataset: Dataset) -> float:
    """KL(histogram of high-quality samples over modes ‖ uniform); 0 means every mode equally hit."""
    nearest, hq = _assign_modes(fake, dataset)
    if not hq.any():
        raise NotApplicable("no high-quality samples, so the mode histogram is empty")
    k = len(dataset.modes)
    p = torch.bincount(nearest[hq], minlength=k).double() / hq.sum()
    p = p[p > 0]
    return float((p * (p * k).log()).sum())


def energy_distance(real: torch.Tensor, fake: torch.Tensor, dataset: Dataset) -> float:
    """Energy distance sqrt(2E|X-Y| - E|X-X'| - E|Y-Y'|) (Székely & Rizzo), scipy's convention."""
    x, y = real.double().flatten(1), fake.double().flatten(1)
    xy = torch.cdist(x, y).mean()
    xx = torch.cdist(x, x).mean()
    yy = torch.cdist(y, y).mean()
    return float((2 * xy - xx - yy).clamp_min(0).sqrt())


for _metric in [
    Metric("modes_captured", modes_captured, True, "modes hit by at least one high-quality sample"),
    Metric(
        "hq_fraction", hq_fraction, True, "fraction of samples within 3 std of their nearest mode"
    ),
    Metric("mode_kl", mode_kl, False, "KL(high-quality mode histogram ‖ uniform)"),
    Metric("energy_distance", energy_distance, False, "energy distance between real and generated"),
]:
    METRICS.add(_metric.name, _metric)
