"""Anomaly-detection data: a labelled image set split into normal and anomalous classes.

A model trains on the normal class(es) of the training split only, and is tested on held-out images
of every class, the anomalies being those outside the normal classes. Two protocols, which must not
be mixed (their numbers are not comparable):

- `one_class` (Ruff et al., ICML 2018, Table 1, the protocol of the cited AnoGAN MNIST numbers): one
  digit is normal, the other nine are anomalous. Datasets `mnist5k_one_class_<d>`.
- `leave_one_out` (Akçay et al., GANomaly, ACCV 2018): one digit is anomalous, the other nine are
  normal. Datasets `mnist5k_leave_one_out_<d>`.

The test set (`scored_set`) is drawn from mnist5k's held-out split, so no test image is ever a
training image: every held-out normal image, and anomalies from a fixed shuffle, up to the number
asked for (at least half of them normal when fewer are asked for than there are), the same for
every cell and seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.datasets.images import SPLIT_SEED, ImageDataset, mnist5k
from bench.registry import DATASETS

PROTOCOLS = ("one_class", "leave_one_out")


@dataclass(frozen=True)
class ScoredSet:
    """Held-out images (uint8), their digit labels, and whether each one is an anomaly."""

    images: torch.Tensor
    labels: torch.Tensor
    anomalous: torch.Tensor  # bool [N]


class AnomalyDataset(ImageDataset):
    """Training images of the normal classes only; held-out images of every class."""

    kind = "anomaly"

    def __init__(self, name: str, source: ImageDataset, protocol: str, digit: int) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol '{protocol}'; known: {', '.join(PROTOCOLS)}")
        self.protocol, self.digit = protocol, digit
        classes = range(source.num_classes)
        self.normal = (
            (digit,) if protocol == "one_class" else tuple(c for c in classes if c != digit)
        )
        images, labels = source.split("train")
        keep = torch.isin(labels, torch.tensor(self.normal))
        super().__init__(name, {"train": (images[keep], labels[keep]),
                                "held_out": source.split("held_out")})  # fmt: skip
        self.classifier_data = source.name

    def is_anomaly(self, labels: torch.Tensor) -> torch.Tensor:
        return ~torch.isin(labels, torch.tensor(self.normal))

    def scored_set(self, n: int) -> ScoredSet:
        """`n` held-out images (fewer if the split has fewer): every normal one, unless fewer than
        half of `n` would then be anomalies, and anomalies in a fixed order."""
        images, labels = self.split("held_out")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
        anomalous = self.is_anomaly(labels[order])
        normal_idx, anomaly_idx = order[~anomalous], order[anomalous]
        n_normal = min(len(normal_idx), max(n // 2, n - len(anomaly_idx)))
        n_anomalous = min(len(anomaly_idx), n - n_normal)
        idx = torch.cat([normal_idx[:n_normal], anomaly_idx[:n_anomalous]])
        return ScoredSet(images[idx], labels[idx], self.is_anomaly(labels[idx]))


class _Mnist5kAnomaly:
    """A registered name's factory: what it is (`kind`) is known without building the data."""

    kind = "anomaly"

    def __init__(self, protocol: str, digit: int) -> None:
        self.protocol, self.digit = protocol, digit
        normal = f"digit {digit}" if protocol == "one_class" else f"every digit but {digit}"
        self.__doc__ = (f"mnist5k for anomaly detection ({protocol}): trains on {normal} only; "
                        "tests on held-out images of every digit")  # fmt: skip

    def __call__(self) -> AnomalyDataset:
        name = f"mnist5k_{self.protocol}_{self.digit}"
        return AnomalyDataset(name, mnist5k(), self.protocol, self.digit)

    def __repr__(self) -> str:
        return f"mnist5k, protocol {self.protocol}, digit {self.digit}"


for _protocol in PROTOCOLS:
    for _digit in range(10):
        DATASETS.add(f"mnist5k_{_protocol}_{_digit}", _Mnist5kAnomaly(_protocol, _digit))
