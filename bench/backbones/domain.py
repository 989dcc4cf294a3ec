"""The domain classifier: a LeNet-class network trained on a dataset's training split, as a backbone.

Inception on a 2-core CPU runs at about 2 images/s, so CPU suites measure FID and friends in the
feature space of a small classifier of the data itself. It is trained deterministically (fixed
seed, fixed data order, one thread) and cached on disk under a key of dataset fingerprint,
architecture and seed; its held-out accuracy is stored beside it and recorded with every result.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity import FeatureExtractorBase, register_feature_extractor

from bench.datasets.images import ImageDataset, to_float
from bench.io import atomic_write_bytes, atomic_write_json

ARCH = "lenet-v1"  # bump when LeNet or its training changes, so cached classifiers are not reused
FEATURES = "penultimate"  # layer for FID, KID, precision/recall, density/coverage
LOGITS = "logits"  # layer for IS and class coverage
TRAIN_IMAGES = 60_000  # images seen in training (epochs = this / split size, at least 3)
# A dataset of large images may set `classifier_images` lower (photo_crops: 48×48 RGB).
BATCH = 128


class LeNet(nn.Module):
    """Two conv+pool stages and a 128-unit hidden layer (LeCun et al. 1998, widened)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            # Adaptive pooling lets one network serve 8×8, 28×28 and 32×32 images.
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(64 * 16, 128), nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features [B, 128], logits [B, classes]) of float images in [-1, 1]."""
        h = self.body(x)
        return h, self.head(self.dropout(h))


def _shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Translate each image by up to 2 pixels (zero-padded): cheap augmentation for small sets."""
    n, _, h, w = x.shape
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = torch.randint(0, 5, (2, n, 1), generator=g)
    rows, cols = dy + torch.arange(h), dx + torch.arange(w)  # [n, h], [n, w]
    out = padded[torch.arange(n)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)  # advanced indexing put the channel axis last


def train_classifier(dataset: ImageDataset, seed: int) -> tuple[LeNet, float]:
    """Train LeNet on the training split; returns it and its held-out accuracy."""
    images, labels = dataset.split("train")
    if dataset.per_channel_classifier:
        raise ValueError(f"'{dataset.name}' uses the classifier of '{dataset.classifier_data}'")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # conv backward sums in a thread-dependent order; one thread is fixed
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's random stream untouched
            torch.manual_seed(seed)
            g = torch.Generator().manual_seed(seed)
            net = LeNet(images.shape[1], dataset.num_classes)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            seen = getattr(dataset, "classifier_images", TRAIN_IMAGES)
            epochs = max(3, math.ceil(seen / len(images)))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
            net.train()
            for _ in range(epochs):
                for idx in torch.randperm(len(images), generator=g).split(BATCH):
                    x = _shift(to_float(images[idx]), g)
                    loss = F.cross_entropy(net(x)[1], labels[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                sched.step()
            net.eval()
            return net, accuracy(net, *dataset.split("held_out"))
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def accuracy(net: LeNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of `images` (uint8) whose predicted class is their label."""
    logits = torch.cat([net(to_float(x))[1] for x in images.split(1000)])
    return float((logits.argmax(1) == labels).double().mean())


def classifier_path(cache_dir: Path, dataset: ImageDataset, seed: int) -> Path:
    return (
        cache_dir / "backbones" / f"{ARCH}-{dataset.name}-{dataset.fingerprint()[:16]}-s{seed}.pt"
    )


def load_or_train(cache_dir: Path, dataset: ImageDataset, seed: int = 0) -> tuple[Path, dict]:
    """The cached classifier file for `dataset` (trained and cached first if missing) and its facts."""
    path = classifier_path(cache_dir, dataset, seed)
    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        net, acc = train_classifier(dataset, seed)
        state = {"in_channels": dataset.shape[0], "num_classes": dataset.num_classes,
                 "state_dict": net.state_dict()}  # fmt: skip
        buf = _torch_bytes(state)
        atomic_write_bytes(path, buf)
        meta = {"arch": ARCH, "dataset": dataset.name, "dataset_sha256": dataset.fingerprint(),
                "seed": seed, "held_out_accuracy": acc,
                "weights_sha256": hashlib.sha256(buf).hexdigest()}  # fmt: skip
        atomic_write_json(meta_path, meta)
    return path, json.loads(meta_path.read_text())


def load_lenet(path: Path) -> LeNet:
    """The cached classifier file at `path` (from `load_or_train`) as a LeNet; building it draws
    its initial weights from the global generator before they are overwritten."""
    state = torch.load(path, weights_only=True)
    net = LeNet(state["in_channels"], state["num_classes"])
    net.load_state_dict(state["state_dict"])
    return net


def _torch_bytes(obj: Any) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class LeNetExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor over a cached LeNet: uint8 images → features, logits."""

    per_channel = False

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.net = load_lenet(Path(kwargs["feature_extractor_weights_path"]))
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return (FEATURES, LOGITS)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return LOGITS if metric == "isc" else FEATURES

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features, logits = self.net(to_float(x))
        out = {FEATURES: features, LOGITS: logits}
        # In the order requested, as torch-fidelity pairs them with its features_list.
        return tuple(out[name] for name in self.features_list)


class PerChannelLeNetExtractor(LeNetExtractor):
    """A one-channel classifier applied to each channel (stacked MNIST).

    Features are the three channels' features side by side; logits are the joint log-probabilities
    of the three digits (1,000 classes, label 100a + 10b + c), so IS and mode counts see triples.
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, c, h, w = x.shape
        features, logits = self.net(to_float(x.reshape(b * c, 1, h, w)))
        lp = logits.log_softmax(1).reshape(b, c, -1)
        joint = lp[:, 0, :, None, None] + lp[:, 1, None, :, None] + lp[:, 2, None, None, :]
        out = {FEATURES: features.reshape(b, -1), LOGITS: joint.reshape(b, -1)}
        return tuple(out[name] for name in self.features_list)


EXTRACTOR = "gan-bench-lenet"
PER_CHANNEL_EXTRACTOR = "gan-bench-lenet-per-channel"
register_feature_extractor(EXTRACTOR, LeNetExtractor)
register_feature_extractor(PER_CHANNEL_EXTRACTOR, PerChannelLeNetExtractor)
