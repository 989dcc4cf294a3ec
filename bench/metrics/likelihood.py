"""Likelihood metrics: what a model assigns to held-out images, not what its samples look like.

Filled by the generation task from the variant itself (`variant.nll`) on the first
`eval.likelihood_samples` images of a fixed shuffle of the held-out split, the same for every cell.
A model without a likelihood (every GAN: its generator puts no density on pixels) leaves them empty,
and the row's note says why. `nll_nats` is exact for an autoregressive model and an upper bound for a
VAE (the importance-weighted bound with `eval.iwae_k` samples, Burda et al. 2016); the note says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.datasets.base import Dataset
from bench.metrics.base import Metric, NotApplicable
from bench.registry import METRICS


@dataclass(frozen=True)
class ModelMetric(Metric):
    """A metric of the model on held-out data, computed by the task from the variant."""


def _from_the_model(real: torch.Tensor, fake: torch.Tensor, dataset: Dataset) -> float:
    raise NotApplicable("computed from the model on held-out images, not from samples")


LIKELIHOOD_METRICS = [
    ModelMetric("nll_nats", _from_the_model, False, "negative log-likelihood of held-out images, "
                "nats per image (exact, or a VAE's importance-weighted upper bound)"),
    ModelMetric("bits_per_dim", _from_the_model, False, "nll_nats / (C·H·W · ln 2): bits per "
                "pixel and channel (8 = uniform over 256 levels; 1 on binarised images)"),
    ModelMetric("neg_elbo_nats", _from_the_model, False, "a VAE's negative evidence lower bound "
                "on held-out images, nats per image (looser than nll_nats)"),
]  # fmt: skip
for _metric in LIKELIHOOD_METRICS:
    METRICS.add(_metric.name, _metric)
