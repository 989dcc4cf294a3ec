"""Users' own translation data: a folder of images under the data root, named like a dataset.

A suite that names a dataset nobody registered (`datasets = ["facades"]`) gets the folder
`GAN_BENCH_DATA/facades` (default `./data/facades`) when it has one of the layouts the authors' code
reads:

- paired (pix2pix's `datasets/facades`): `train/` and `test/` (or `val/`) hold side-by-side images,
  the source on the left half and the target on the right. Name the dataset `facades_BtoA` to
  translate right to left instead.
- unpaired (CycleGAN's `datasets/horse2zebra`): `trainA/`, `trainB/`, `testA/`, `testB/`.

Images (png, jpg, bmp, webp) are decoded by Pillow, in file-name order, and all of a folder's
images must have one size; grey images are kept grey unless the folder also holds colour ones. The
data carry no labels, so metrics that need them (label preservation, the `domain` backbone) are
refused for these datasets; pixel metrics, the cycle error and Inception features apply.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch

from bench.datasets.images import (
    ImageDataset,
    PairedImageDataset,
    UnpairedImageDataset,
    data_root,
)
from bench.errors import UsageError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # Pillow modes read as one channel; others as RGB
REVERSED = "_BtoA"  # name suffix: a paired folder read right half → left half
UNPAIRED_DIRS = ("trainA", "trainB", "testA", "testB")
PAIRED_HELD_OUT = ("test", "val")  # the first that exists is the held-out split
LAYOUTS = (
    "paired: train/ and test/ (or val/) of side-by-side source|target images; "
    "unpaired: trainA/, trainB/, testA/, testB/"
)


@cache
def read_images(folder: Path) -> torch.Tensor:
    """Every image file of `folder`, in name order, as uint8 [N, C, H, W] (C = 1 or 3). Read once
    per process: a run builds its datasets several times (validation, warm-up, fingerprint)."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
    if not files:
        raise UsageError(f"{folder}: no images ({', '.join(EXTENSIONS)}); put the images there")
    images = []
    for path in files:
        try:
            with Image.open(path) as image:
                grey = image.mode in GREY_MODES
                array = np.array(image.convert("L" if grey else "RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise UsageError(
                f"{path}: not a readable image ({exc}); remove or replace it"
            ) from None
        images.append(torch.from_numpy(array[None] if grey else array.transpose(2, 0, 1).copy()))
        if images[-1].shape[1:] != images[0].shape[1:]:
            raise UsageError(
                f"{path}: {array.shape[1]}×{array.shape[0]} pixels, but {files[0].name} is "
                f"{images[0].shape[2]}×{images[0].shape[1]}; resize the folder's images to one size"
            )
    channels = max(im.shape[0] for im in images)
    return torch.stack([im.expand(channels, -1, -1) for im in images]).contiguous()


def _unlabelled(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return images, torch.zeros(len(images), dtype=torch.int64)


class PairedFolder(PairedImageDataset):
    """Side-by-side source|target images of a folder (pix2pix's layout), without labels."""

    def __init__(self, name: str, path: Path, reverse: bool) -> None:
        held_out = next(path / d for d in PAIRED_HELD_OUT if (path / d).is_dir())
        targets, sources = {}, {}
        for split, folder in (("train", path / "train"), ("held_out", held_out)):
            images = read_images(folder)
            width = images.shape[-1] // 2
            left, right = images[..., :width], images[..., width : 2 * width]
            src, tgt = (right, left) if reverse else (left, right)
            sources[split], targets[split] = src.contiguous(), _unlabelled(tgt.contiguous())
        super().__init__(name, targets, sources)
        self.num_classes = 0


class UnpairedFolder(UnpairedImageDataset):
    """The A and B images of a folder (CycleGAN's layout), without labels."""

    def __init__(self, name: str, path: Path) -> None:
        domains = {}
        for key in ("A", "B"):
            splits = {
                "train": _unlabelled(read_images(path / f"train{key}")),
                "held_out": _unlabelled(read_images(path / f"test{key}")),
            }
            domains[key] = ImageDataset(f"{name}_{key}", splits)
            domains[key].num_classes = 0
        if domains["A"].shape[1:] != domains["B"].shape[1:]:
            raise UsageError(
                f"{path}: A images are {domains['A'].shape[2]}×{domains['A'].shape[1]} pixels and B "
                f"images {domains['B'].shape[2]}×{domains['B'].shape[1]}; resize them to one size"
            )
        super().__init__(name, domains)


class FolderSource:
    """What the dataset registry returns for a folder: builds the dataset, and knows its kind
    without reading an image."""

    labelled = False  # no classes: no domain classifier, no label metrics
    holds_images = True

    def __init__(self, name: str, path: Path, kind: str, reverse: bool = False) -> None:
        self.name, self.path, self.kind, self.reverse = name, path, kind, reverse
        self.domain_classifiers = {"A": f"{name}_A", "B": f"{name}_B"}  # column names only
        self.__doc__ = f"{kind} images of the folder {path} (no labels)"

    def __call__(self) -> ImageDataset | UnpairedImageDataset:
        if self.kind == "paired":
            return PairedFolder(self.name, self.path, self.reverse)
        return UnpairedFolder(self.name, self.path)


def _layout(path: Path) -> str | None:
    if all((path / d).is_dir() for d in UNPAIRED_DIRS):
        return "unpaired"
    if (path / "train").is_dir() and any((path / d).is_dir() for d in PAIRED_HELD_OUT):
        return "paired"
    return None


def find(name: str) -> FolderSource | None:
    """The folder dataset `name` (see the module docstring), or None when the data root has no
    folder of that name. A folder whose layout is not recognised is an error."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    path, reverse = data_root() / name, False
    if not path.is_dir() and name.endswith(REVERSED):
        path, reverse = data_root() / name.removesuffix(REVERSED), True
    if not path.is_dir():
        return None
    kind = _layout(path)
    if kind is None or (reverse and kind != "paired"):
        want = "paired: train/ and test/ (or val/)" if reverse else LAYOUTS
        raise UsageError(f"dataset '{name}': the folder {path} does not have the layout ({want})")
    return FolderSource(name, path, kind, reverse)


def hint() -> str:
    """Said when a dataset name is unknown."""
    return (
        f"or a folder under {data_root()} (set GAN_BENCH_DATA) in one of these layouts: {LAYOUTS}"
    )
