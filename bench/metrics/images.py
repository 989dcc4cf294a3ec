"""Image metrics through torch-fidelity and prdc, in the feature space of a named backbone.

One feature extraction of the generated images feeds every metric. Real-image features are
extracted once per (dataset, split, count, backbone weights) and cached on disk. The maths is the
libraries': torch-fidelity's FID, KID, IS and precision/recall functions, prdc's density and
coverage. Columns are `<metric>/<backbone>`, e.g. `fid/lenet-mnist5k`, `kid_std/inception`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import backbones
from bench.backbones import Backbone
from bench.datasets.images import ImageDataset, to_uint8
from bench.io import atomic_write_bytes
from bench.metrics.base import Metric, NotApplicable
from bench.registry import METRICS

KID_SUBSET_SIZE = 1000  # torch-fidelity's default; lowered to the sample count when fewer exist
PRDC_NEAREST_K = 5  # k of density/coverage (Naeem et al. 2020)
BATCH_SIZE = 64  # torch-fidelity's default extraction batch


@dataclass(frozen=True)
class Features:
    """What an image metric computes from: one backbone's features of the real (reference) and
    generated images, the dataset, and the labels generated images were asked for (or their
    sources' labels, for a translation)."""

    backbone: Backbone
    real: dict[str, torch.Tensor]  # layer name → [N, D]
    fake: dict[str, torch.Tensor]
    dataset: ImageDataset
    kid_subsets: int
    labels: torch.Tensor | None

    def layer(self) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """(real, fake) features of the backbone's feature layer, the smaller count and the width."""
        fr, ff = self.real[self.backbone.features], self.fake[self.backbone.features]
        return fr, ff, min(len(fr), len(ff)), fr.shape[1]

    def logits(self, hint: str) -> torch.Tensor:
        """The generated images' class scores over the dataset's own classes."""
        bb = self.backbone
        if bb.logits is None or not bb.classes_are_data_classes:
            raise NotApplicable(
                f"backbone '{bb.name}' does not classify {self.dataset.name}'s classes; {hint}"
            )
        return self.fake[bb.logits]


# Each metric below returns (column prefix → value, note) and raises NotApplicable with the reason
# when it cannot be computed. The maths is torch-fidelity's and prdc's; they are imported inside
# the functions because torch-fidelity pulls in torchvision's models (seconds of start-up in every
# worker process, including those that never measure an image).


def _fid(f: Features) -> tuple[dict[str, float], str]:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    fr, ff, n, dim = f.layer()
    if n < 2:
        raise NotApplicable(f"needs at least 2 samples per side (got {n})")
    fid = fid_statistics_to_metric(
        fid_features_to_statistics(ff), fid_features_to_statistics(fr), verbose=False
    )["frechet_inception_distance"]
    note = ""
    if n <= dim:
        note = (f"fid/{f.backbone.name}: {n} samples ≤ {dim} feature dimensions, so the covariance "
                "is singular and FID is biased upward; compare only at equal sample counts")  # fmt: skip
    return {"fid": fid}, note


def _kid(f: Features) -> tuple[dict[str, float], str]:
    from torch_fidelity.metric_kid import kid_features_to_metric

    fr, ff, n, _ = f.layer()
    subset = min(KID_SUBSET_SIZE, len(fr), len(ff))
    if subset < 2:
        raise NotApplicable(f"needs at least 2 samples per side (got {n})")
    # When a subset is the whole of both sets, every subset is the same: compute it once, and
    # leave the spread empty rather than report a spread of zero.
    whole = subset == len(fr) == len(ff)
    out = kid_features_to_metric(
        ff, fr, kid_subset_size=subset, kid_subsets=1 if whole else f.kid_subsets, verbose=False
    )
    notes = []
    if subset < KID_SUBSET_SIZE:
        notes.append(f"kid/{f.backbone.name}: subset size {subset} (fewer samples than the default "
                     f"{KID_SUBSET_SIZE})")  # fmt: skip
    if whole:
        notes.append(
            f"kid_std/{f.backbone.name}: every subset is the whole set, so there is no spread"
        )
    std = float("nan") if whole else out["kernel_inception_distance_std"]
    return {"kid": out["kernel_inception_distance_mean"], "kid_std": std}, "; ".join(notes)


def _is(f: Features) -> tuple[dict[str, float], str]:
    from torch_fidelity.metric_isc import isc_features_to_metric

    if f.backbone.logits is None:
        raise NotApplicable(f.backbone.no_logits_reason)
    out = isc_features_to_metric(f.fake[f.backbone.logits], splits=10, shuffle=True, rng_seed=2020)
    return {"is": out["inception_score_mean"], "is_std": out["inception_score_std"]}, ""


def _prc(f: Features) -> tuple[dict[str, float], str]:
    from torch_fidelity.metric_prc import prc_features_to_metric

    fr, ff, _, _ = f.layer()
    out = prc_features_to_metric(ff, fr, verbose=False)
    return {"precision": out["precision"], "recall": out["recall"]}, ""


def _prdc(f: Features) -> tuple[dict[str, float], str]:
    from prdc import compute_prdc

    fr, ff, n, _ = f.layer()
    if n <= PRDC_NEAREST_K:
        raise NotApplicable(f"needs more than k = {PRDC_NEAREST_K} samples per side (got {n})")
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        out = compute_prdc(fr.numpy(), ff.numpy(), PRDC_NEAREST_K)
    return {"density": float(out["density"]), "coverage": float(out["coverage"])}, ""


def _class_coverage(f: Features) -> tuple[dict[str, float], str]:
    k = f.dataset.num_classes
    counts = np.bincount(f.logits("use 'domain'").argmax(1).numpy(), minlength=k)
    p = counts[counts > 0] / counts.sum()
    return {"classes_covered": float((counts > 0).sum()),
            "class_kl": float((p * np.log(p * k)).sum())}, ""  # fmt: skip


def _label_hits(column: str) -> Callable[[Features], tuple[dict[str, float], str]]:
    """How often the classifier reads the label each output was meant to show."""

    def compute(f: Features) -> tuple[dict[str, float], str]:
        if f.labels is None:
            raise NotApplicable("the generator is not conditional: no labels were asked for")
        hits = f.logits("use 'domain'").argmax(1) == f.labels.cpu()
        return {column: float(hits.double().mean())}, ""

    return compute


@dataclass(frozen=True)
class ImageMetric(Metric):
    """A metric computed from backbone features by `compute`; `columns` are the prefixes it fills,
    with direction."""

    columns: tuple[tuple[str, bool], ...] = ()
    needs_logits: bool = False
    compute: Callable[[Features], tuple[dict[str, float], str]] | None = None


def _not_direct(*_: Any) -> float:
    raise NotApplicable("image metrics are computed by ImageEvaluator, not one at a time")


ALL = ("generation", "paired_translation", "unpaired_translation", "super_resolution")  # images out
IMAGE_METRICS = [
    ImageMetric("fid", _not_direct, False, "Fréchet distance of backbone features (torch-fidelity)",
                ALL, columns=(("fid", False),), compute=_fid),
    ImageMetric("kid", _not_direct, False, "kernel distance of backbone features, mean and std over "
                "subsets (torch-fidelity)", ALL, columns=(("kid", False), ("kid_std", False)),
                compute=_kid),
    ImageMetric("is", _not_direct, True, "Inception Score from the backbone's classifier "
                "(torch-fidelity)", ALL, columns=(("is", True), ("is_std", False)),
                needs_logits=True, compute=_is),
    ImageMetric("prc", _not_direct, True, "precision and recall, k = 3 (torch-fidelity)",
                ALL, columns=(("precision", True), ("recall", True)), compute=_prc),
    ImageMetric("prdc", _not_direct, True, "density and coverage, k = 5 (prdc)",
                ALL, columns=(("density", True), ("coverage", True)), compute=_prdc),
    ImageMetric("class_coverage", _not_direct, True, "classes hit by the domain classifier's "
                "predictions and KL(class histogram ‖ uniform)", ALL,
                columns=(("classes_covered", True), ("class_kl", False)), needs_logits=True,
                compute=_class_coverage),
    ImageMetric("label_accuracy", _not_direct, True, "for a conditional generator: how often the "
                "domain classifier reads the label it was asked for", ("generation",),
                columns=(("label_accuracy", True),), needs_logits=True,
                compute=_label_hits("label_accuracy")),
    # Pix2Pix's FCN-score asks whether a classifier of the target domain still sees what the
    # source showed; for digits, whether the target domain's classifier reads the source's digit.
    ImageMetric("label_preservation", _not_direct, True, "for a translation: how often the target "
                "domain's classifier reads the source image's class from the output",
                ("paired_translation", "unpaired_translation", "super_resolution"),
                columns=(("label_preservation", True),), needs_logits=True,
                compute=_label_hits("label_preservation")),
]  # fmt: skip
for _metric in IMAGE_METRICS:
    METRICS.add(_metric.name, _metric)


def default_cache_dir() -> Path:
    """Where classifiers, converted weights and real features are cached: GAN_BENCH_CACHE, else
    results/cache."""
    return Path(os.environ.get("GAN_BENCH_CACHE", Path("results") / "cache")).resolve()


def column_higher_is_better(column: str) -> bool | None:
    """Direction of an image-metric column (`fid/inception` → False); None if it is not one."""
    prefix = column.split("/", 1)[0]
    for metric in (METRICS.get(m) for m in METRICS.names()):
        for name, higher in getattr(metric, "columns", ()):
            if name == prefix:
                return higher
    return None


class _Images(torch.utils.data.Dataset):
    """uint8 images as torch-fidelity wants them: each item a bare [C, H, W] tensor."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def extract(
    extractor: Any, images: torch.Tensor, device: torch.device, rgb: bool = False
) -> dict[str, torch.Tensor]:
    """torch-fidelity's own extraction loop over uint8 images; layer name → [N, D] features."""
    from torch_fidelity.utils import get_featuresdict_from_dataset

    if rgb and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return get_featuresdict_from_dataset(
        _Images(images), extractor, BATCH_SIZE, device.type == "cuda", True, False
    )


class ImageEvaluator:
    """Scores generated images against a fixed reference set, for each backbone, with cached reals."""

    def __init__(
        self,
        dataset: ImageDataset,
        metrics: list[str],
        backbone_kinds: list[str],
        num_real: int,
        cache_dir: Path,
        device: torch.device,
        reference_split: str = "train",
        kid_subsets: int = 100,
        inception_weights: str | None = None,
    ) -> None:
        self.dataset = dataset
        self.metrics = [METRICS.get(m) for m in metrics if isinstance(METRICS.get(m), ImageMetric)]
        self.kinds = backbone_kinds
        self.num_real = num_real
        self.cache_dir = Path(cache_dir)
        self.device = device
        self.reference_split = reference_split
        self.kid_subsets = kid_subsets
        self.inception_weights = inception_weights
        self.real_extractions = (
            0  # how many times real features were extracted, not read from cache
        )
        self._prepared: list[tuple[Backbone, Any, dict[str, torch.Tensor]]] | None = None

    def prepare(self) -> list[Backbone]:
        """Resolve the backbones and load (or extract and cache) the reference features."""
        from torch_fidelity.utils import create_feature_extractor

        if self._prepared is None:
            self._prepared = []
            for kind in self.kinds:
                bb = backbones.resolve(kind, self.dataset, self.cache_dir, self.inception_weights)
                layers = [bb.features] + ([bb.logits] if bb.logits else [])
                extractor = create_feature_extractor(
                    bb.extractor, layers, cuda=self.device.type == "cuda",
                    feature_extractor_weights_path=str(bb.weights), verbose=False,
                )  # fmt: skip
                self._prepared.append((bb, extractor, self._real_features(bb, extractor)))
        return [bb for bb, _, _ in self._prepared]

    def _real_features(self, bb: Backbone, extractor: Any) -> dict[str, torch.Tensor]:
        name = (f"{self.dataset.name}-{self.dataset.fingerprint()[:16]}-{self.reference_split}"
                f"-n{self.num_real}-{bb.name}-{bb.weights_sha256[:16]}.pt")  # fmt: skip
        path = self.cache_dir / "features" / name
        if path.is_file():
            return torch.load(path, weights_only=True)
        images, _ = self.dataset.reference(self.reference_split, self.num_real)
        # torch's DataLoader (inside torch-fidelity) draws a seed from the global generator. This
        # extraction happens only when the cache is cold, so it must leave that generator as it
        # was: otherwise a cold cache shifts the training noise after it and changes every number.
        with torch.random.fork_rng(devices=[]):
            features = extract(extractor, images, self.device, bb.rgb)
        self.real_extractions += 1
        buf = io.BytesIO()
        torch.save(features, buf)
        atomic_write_bytes(path, buf.getvalue())
        return features

    def __call__(
        self, fake: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """Columns and notes for generated images `fake` (float in [-1, 1], or uint8), and the
        labels a conditional generator was given for them."""
        fake_u8 = fake if fake.dtype == torch.uint8 else to_uint8(fake)
        row: dict[str, Any] = {}
        notes: list[str] = []
        for bb, extractor, real in self.prepare_all():
            fake_feats = extract(extractor, fake_u8, self.device, bb.rgb)
            row[f"n_real/{bb.name}"] = len(real[bb.features])
            row[f"n_fake/{bb.name}"] = len(fake_u8)
            row[f"backbone_sha256/{bb.name}"] = bb.weights_sha256
            if "held_out_accuracy" in bb.info:
                row[f"backbone_accuracy/{bb.name}"] = bb.info["held_out_accuracy"]
            for metric in self.metrics:
                try:
                    features = Features(
                        bb, real, fake_feats, self.dataset, self.kid_subsets, labels
                    )
                    values, note = metric.compute(features)
                    row.update({f"{col}/{bb.name}": v for col, v in values.items()})
                    if note:
                        notes.append(note)
                except NotApplicable as exc:
                    row.update({f"{col}/{bb.name}": float("nan") for col, _ in metric.columns})
                    notes.append(f"{metric.name}/{bb.name}: {exc}")
        return row, notes

    def prepare_all(self) -> list[tuple[Backbone, Any, dict[str, torch.Tensor]]]:
        self.prepare()
        assert self._prepared is not None
        return self._prepared
