"""Super-resolution data (Ledig et al., CVPR 2017): high-resolution (HR) images and the
low-resolution (LR) versions a stated, deterministic downsampler makes of them.

The downsampler is bicubic with antialiasing (torch's `interpolate(mode="bicubic",
antialias=True)`, the analogue of MATLAB's `imresize` that SR papers use) by the factor `scale`,
rounded to uint8, so every cell and machine sees the same LR pixels.

- `mnist5k_x4`: mnist5k's digits, 28×28 HR from 7×7 LR; the digits keep their labels, so mnist5k's
  domain classifier measures the outputs and label preservation applies.
- `sr_patches`: 48×48 HR crops (12×12 LR) of natural photographs that ship in scikit-image and
  scikit-learn. Training crops come from six photographs, held-out crops from three others, so
  evaluation never sees a training image. The photographs have no classes; the feature space of
  FID/KID is a classifier of which training photograph a crop comes from (`photo_crops`), trained on
  the top three quarters of each and checked on the bottom quarter.
- A folder `GAN_BENCH_DATA/<name>` of the user's HR images (Set5/Set14/BSD100 style) with `train/`
  and `test/` (or `val/`), named `<name>_x<scale>` in a suite: every image is cut into
  non-overlapping 48×48 tiles (`SR_TILE` of bench/datasets/folders.py), which are the HR images.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from bench.datasets.images import (
    SPLIT_SEED,
    ImageDataset,
    PairedImageDataset,
    mnist5k,
)
from bench.registry import DATASETS

TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                "immunohistochemistry")  # fmt: skip
HELD_OUT_PHOTOS = (
    "china",
    "flower",
    "motorcycle",
)  # scikit-learn's two, scikit-image's stereo left
PATCH = 48  # HR side of sr_patches; the paper crops 96×96, halved so a CPU step stays fast
TRAIN_CROPS, HELD_OUT_CROPS = 600, 200  # per photograph
CLASSIFIER_TOP = 0.75  # photo_crops: training crops from the top of each photograph, held-out below


def downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 HR images [N, C, H, W] → uint8 LR images [N, C, H/scale, W/scale]: bicubic with
    antialiasing, rounded."""
    _, _, h, w = hr.shape
    if h % scale or w % scale:
        raise ValueError(f"{h}×{w} images cannot be downsampled by {scale}: not a multiple")
    lr = F.interpolate(hr.double(), size=(h // scale, w // scale), mode="bicubic",
                       align_corners=False, antialias=True)  # fmt: skip
    return lr.round().clamp(0, 255).to(torch.uint8)


class SuperResDataset(PairedImageDataset):
    """HR images (the splits, what outputs are compared with) and their LR versions (`sources`)."""

    kind = "superres"

    def __init__(
        self, name: str, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], scale: int
    ) -> None:
        self.scale = scale
        sources = {split: downsample(images, scale) for split, (images, _) in splits.items()}
        super().__init__(name, splits, sources)


class Mnist5kX4(SuperResDataset):
    """mnist5k digits, 28×28 HR from 7×7 LR (×4); its split and labels are mnist5k's."""

    classifier_data = "mnist5k"

    def __init__(self) -> None:
        super().__init__("mnist5k_x4", mnist5k().splits, 4)


DATASETS.add("mnist5k_x4", Mnist5kX4)


@cache
def _photos() -> dict[str, np.ndarray]:
    """The nine RGB photographs, uint8 [H, W, 3], by name."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(data, name)() for name in TRAIN_PHOTOS}
    sample = load_sample_images()
    for path, image in zip(sample.filenames, sample.images, strict=True):
        photos[path.rsplit("/", 1)[-1].removesuffix(".jpg")] = image
    photos["motorcycle"] = data.stereo_motorcycle()[0]
    return photos


def _crops(photo: np.ndarray, n: int, rows: tuple[float, float], key: int) -> torch.Tensor:
    """`n` random PATCH×PATCH crops whose top-left corner lies in the fraction `rows` of the
    photograph's height (the crop itself may not leave that band), from a generator keyed by `key`."""
    h, w, _ = photo.shape
    top_lo, top_hi = int(rows[0] * h), int(rows[1] * h) - PATCH
    rng = np.random.default_rng([SPLIT_SEED, key])
    tops = rng.integers(top_lo, top_hi + 1, size=n)
    lefts = rng.integers(0, w - PATCH + 1, size=n)
    out = np.stack([photo[t : t + PATCH, x : x + PATCH] for t, x in zip(tops, lefts, strict=True)])
    return torch.from_numpy(out.transpose(0, 3, 1, 2).copy())


@cache
def _photo_crop_splits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Crops of the training photographs labelled by photograph: top band → train, bottom → held out."""
    photos = _photos()
    train, held = [], []
    for label, name in enumerate(TRAIN_PHOTOS):
        per_top = round(TRAIN_CROPS * CLASSIFIER_TOP)
        train.append(_crops(photos[name], per_top, (0.0, CLASSIFIER_TOP), 2 * label))
        held.append(
            _crops(photos[name], TRAIN_CROPS - per_top, (CLASSIFIER_TOP, 1.0), 2 * label + 1)
        )

    def labelled(parts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.cat(
            [torch.full((len(p),), i, dtype=torch.int64) for i, p in enumerate(parts)]
        )
        return torch.cat(parts), labels

    return {"train": labelled(train), "held_out": labelled(held)}


class PhotoCrops(ImageDataset):
    """48×48 crops of sr_patches' six training photographs, labelled by photograph: the data of the
    classifier whose features measure sr_patches (a texture and colour space; no ImageNet weights)."""

    # LeNet training images (4 epochs): 12,000 took 40 s on this 2-core CPU, the default 60,000
    # would take five times as long.
    classifier_images = 12_000

    def __init__(self) -> None:
        super().__init__("photo_crops", _photo_crop_splits())


DATASETS.add("photo_crops", PhotoCrops)


class SrPatches(SuperResDataset):
    """48×48 HR crops of natural photographs (12×12 LR, ×4): training crops from six of scikit-image's
    photographs, held-out crops from scikit-learn's china and flower and scikit-image's motorcycle."""

    classifier_data = "photo_crops"
    labelled = False  # the photographs have no classes: no label metrics

    def __init__(self) -> None:
        crops, photos = _photo_crop_splits(), _photos()
        train = torch.cat([crops["train"][0], crops["held_out"][0]])
        held = torch.cat([_crops(photos[name], HELD_OUT_CROPS, (0.0, 1.0), 100 + i)
                          for i, name in enumerate(HELD_OUT_PHOTOS)])  # fmt: skip
        splits = {"train": (train, torch.zeros(len(train), dtype=torch.int64)),
                  "held_out": (held, torch.zeros(len(held), dtype=torch.int64))}  # fmt: skip
        super().__init__("sr_patches", splits, 4)
        self.num_classes = 0


DATASETS.add("sr_patches", SrPatches)
