"""Users' own translation data: a folder of images under the data root, named like a dataset.

A suite that names a dataset nobody registered (`datasets = ["facades"]`) gets the folder
`GAN_BENCH_DATA/facades` (default `./data/facades`) when it has one of the layouts the authors' code
reads:

- paired (pix2pix's `datasets/facades`): `train/` and `test/` (or `val/`) hold side-by-side images,
  the source on the left half and the target on the right. Name the dataset `facades_BtoA` to
  translate right to left instead.
- unpaired (CycleGAN's `datasets/horse2zebra`): `trainA/`, `trainB/`, `testA/`, `testB/`.
- super-resolution (Set5/Set14/BSD100 style): `train/` and `test/` (or `val/`) hold HR images of any
  sizes; the suite names the dataset `<folder>_x<scale>` (`set14_x4`). Each image is cut into
  non-overlapping 48×48 tiles (its right and bottom remainders dropped), which are the HR images;
  their LR versions are made by bench/datasets/superres.py's downsampler.

Images (png, jpg, bmp, webp) are decoded by Pillow, in file-name order, and all of a folder's
images must have one size (super-resolution folders excepted); grey images are kept grey unless
the folder also holds colour ones. The
data carry no labels, so metrics that need them (label preservation, the `domain` backbone) are
refused for these datasets; pixel metrics, the cycle error and Inception features apply.
"""

from __future__ import annotations

import re
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
from bench.datasets.superres import SuperResDataset
from bench.errors import UsageError

SR_TILE = 48  # HR side of a super-resolution folder's tiles (sr_patches' size)
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # Pillow modes read as one channel; others as RGB
REVERSED = "_BtoA"  # name suffix: a paired folder read right half → left half
UNPAIRED_DIRS = ("trainA", "trainB", "testA", "testB")
PAIRED_HELD_OUT = ("test", "val")  # the first that exists is the held-out split
LAYOUTS = (
    "paired: train/ and test/ (or val/) of side-by-side source|target images; "
    "unpaired: trainA/, trainB/, testA/, testB/"
)


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
    if not files:
        raise UsageError(f"{folder}: no images ({', '.join(EXTENSIONS)}); put the images there")
    return files


def _read_image(path: Path) -> torch.Tensor:
    """One image file as uint8 [C, H, W], C = 1 for grey modes, else 3."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = image.mode in GREY_MODES
            array = np.array(image.convert("L" if grey else "RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"{path}: not a readable image ({exc}); remove or replace it") from None
    return torch.from_numpy(array[None] if grey else array.transpose(2, 0, 1).copy())


def _same_channels(images: list[torch.Tensor]) -> list[torch.Tensor]:
    """Grey images repeated to RGB when the folder also holds colour ones."""
    channels = max(im.shape[0] for im in images)
    return [im.expand(channels, -1, -1) for im in images]


@cache
def read_images(folder: Path) -> torch.Tensor:
    """Every image file of `folder`, in name order, as uint8 [N, C, H, W] (C = 1 or 3). Read once
    per process: a run builds its datasets several times (validation, warm-up, fingerprint)."""
    files = _image_files(folder)
    images = []
    for path in files:
        images.append(_read_image(path))
        if images[-1].shape[1:] != images[0].shape[1:]:
            raise UsageError(
                f"{path}: {images[-1].shape[2]}×{images[-1].shape[1]} pixels, but {files[0].name} "
                f"is {images[0].shape[2]}×{images[0].shape[1]}; resize the folder's images to one size"
            )
    return torch.stack(_same_channels(images)).contiguous()


@cache
def read_tiles(folder: Path, tile: int) -> torch.Tensor:
    """Every image file of `folder`, in name order, cut into non-overlapping `tile`×`tile` tiles
    (row by row; remainders dropped), as uint8 [N, C, tile, tile]."""
    tiles = []
    for path in _image_files(folder):
        image = _read_image(path)
        _, h, w = image.shape
        if h < tile or w < tile:
            raise UsageError(f"{path}: {w}×{h} pixels, smaller than one {tile}×{tile} tile; "
                             "remove it or use larger images")  # fmt: skip
        grid = image[:, : h - h % tile, : w - w % tile].unfold(1, tile, tile).unfold(2, tile, tile)
        tiles += list(grid.permute(1, 2, 0, 3, 4).reshape(-1, image.shape[0], tile, tile))
    return torch.stack(_same_channels(tiles)).contiguous()


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


class SuperResFolder(SuperResDataset):
    """HR tiles of a folder's images (`SR_TILE`), without labels; LR made by the downsampler."""

    def __init__(self, name: str, path: Path, scale: int) -> None:
        held_out = next(path / d for d in PAIRED_HELD_OUT if (path / d).is_dir())
        splits = {split: _unlabelled(read_tiles(folder, SR_TILE))
                  for split, folder in (("train", path / "train"), ("held_out", held_out))}  # fmt: skip
        super().__init__(name, splits, scale)
        self.num_classes = 0


class FolderSource:
    """What the dataset registry returns for a folder: builds the dataset, and knows its kind
    without reading an image."""

    labelled = False  # no classes: no domain classifier, no label metrics
    holds_images = True

    def __init__(
        self, name: str, path: Path, kind: str, reverse: bool = False, scale: int = 0
    ) -> None:
        self.name, self.path, self.kind, self.reverse, self.scale = name, path, kind, reverse, scale
        self.domain_classifiers = {"A": f"{name}_A", "B": f"{name}_B"}  # column names only
        self.__doc__ = f"{kind} images of the folder {path} (no labels)"

    def __call__(self) -> ImageDataset | UnpairedImageDataset:
        if self.kind == "paired":
            return PairedFolder(self.name, self.path, self.reverse)
        if self.kind == "superres":
            return SuperResFolder(self.name, self.path, self.scale)
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
    scaled = re.fullmatch(r"(.+)_x(\d+)", name)
    if not path.is_dir() and scaled:
        return _superres(name, data_root() / scaled[1], int(scaled[2]))
    if not path.is_dir():
        return None
    kind = _layout(path)
    if kind is None or (reverse and kind != "paired"):
        want = "paired: train/ and test/ (or val/)" if reverse else LAYOUTS
        raise UsageError(f"dataset '{name}': the folder {path} does not have the layout ({want})")
    return FolderSource(name, path, kind, reverse)


def _superres(name: str, path: Path, scale: int) -> FolderSource | None:
    """The super-resolution folder dataset `name` (`<folder>_x<scale>`), or None without the folder."""
    if not path.is_dir():
        return None
    if not ((path / "train").is_dir() and any((path / d).is_dir() for d in PAIRED_HELD_OUT)):
        raise UsageError(f"dataset '{name}': the folder {path} does not have the super-resolution "
                         "layout (train/ and test/ (or val/) of HR images)")  # fmt: skip
    if scale < 2 or SR_TILE % scale:
        raise UsageError(f"dataset '{name}': scale {scale} must be at least 2 and divide the "
                         f"{SR_TILE}-pixel tiles (2, 3, 4, 6, 8, ...)")  # fmt: skip
    return FolderSource(name, path, "superres", scale=scale)


def hint() -> str:
    """Said when a dataset name is unknown."""
    return (
        f"or a folder under {data_root()} (set GAN_BENCH_DATA) in one of these layouts: {LAYOUTS}; "
        "or <folder>_x<scale> for super-resolution of a folder's train/ and test/ HR images"
    )
