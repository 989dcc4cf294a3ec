"""What the harness needs from a dataset, and what a variant is told about it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DataSpec:
    """What a variant needs to know of its data to build its networks."""

    shape: tuple[int, ...]  # one sample: (2,) for points, (C, H, W) for images in [-1, 1]
    num_classes: int = 0  # classes a conditional variant can condition on; 0 = unlabelled
    source_shape: tuple[int, ...] | None = None  # a paired dataset's source images (C, H, W)
    binary: bool = False  # images whose pixels are only -1 or 1 (binarised), not 256 levels


class Dataset:
    """A source of real samples. Randomness comes only from the generator passed in."""

    name: str = ""
    # What one draw holds: "samples" (a sample, with its label where the data have classes) or
    # "paired" (a source image, its target image and the label they share). Tasks check it.
    kind: str = "samples"
    shape: tuple[int, ...] = ()
    num_classes: int = 0
    # Mode centres [K, dim] and the per-coordinate noise std of each mode; None for data without modes.
    modes: torch.Tensor | None = None
    mode_std: float | None = None
    binary: bool = False  # binarised images: every pixel is -1 or 1 (a likelihood model's output)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(tuple(self.shape), self.num_classes, binary=self.binary)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` real samples as a float32 tensor [n, *shape]."""
        raise NotImplementedError

    def sample_labelled(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` real samples and their class labels (int64); only for data with `num_classes > 0`."""
        raise NotImplementedError(f"dataset '{self.name}' has no labels")

    def fingerprint(self) -> str:
        """sha256 of 1,000 samples drawn with a fixed seed: it changes whenever the data does."""
        x = self.sample(1000, torch.Generator().manual_seed(0))
        return hashlib.sha256(x.numpy().tobytes()).hexdigest()


def dataset_kind(name: str) -> str:
    """The kind of the registered dataset `name`, known without building it."""
    from bench.registry import DATASETS

    return getattr(DATASETS.get(name), "kind", "samples")
