"""Super-resolution data and metrics: the downsampler, the photographs' split, the SR papers' PSNR
and SSIM protocol against hand-computed values, and users' folders of HR images."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.datasets.superres import (
    HELD_OUT_PHOTOS,
    PATCH,
    TRAIN_PHOTOS,
    _photos,
    downsample,
)
from bench.errors import UsageError
from bench.metrics.base import NotApplicable
from bench.registry import DATASETS, METRICS, load_all

load_all()


# --- PSNR and SSIM on the Y channel, border cropped ------------------------------------------------


def _colour_images(rgb: tuple[float, float, float], side: int = 28) -> torch.Tensor:
    """Two images of one colour, channels given in [0, 1], as the harness's floats in [-1, 1]."""
    x = torch.empty(2, 3, side, side, dtype=torch.float64)
    for c, value in enumerate(rgb):
        x[:, c] = 2 * value - 1
    return x


def test_psnr_y_and_ssim_y_match_hand_computed_values_with_the_border_cropped():
    hr = _colour_images((1.0, 0.5, 0.0))
    out = _colour_images((0.5, 0.5, 0.5))
    out[..., :4, :] = torch.rand(2, 3, 4, 28) * 2 - 1  # garbage only in the 4-pixel border
    out[..., :, -4:] = -1.0
    # By hand, Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255:
    #   HR  (1, 0.5, 0):     (16 + 65.481 + 64.2765) / 255 = 145.7575 / 255
    #   out (0.5, 0.5, 0.5): (16 + 0.5 · 219) / 255        = 125.5 / 255
    y_hr, y_out = 145.7575 / 255, 125.5 / 255
    psnr = -20 * math.log10(y_hr - y_out)  # peak 1; the cropped interior differs by a constant
    # SSIM of two constant images: the structure and contrast terms are C2/C2 = 1, so only the
    # luminance term (2 μx μy + C1) / (μx² + μy² + C1) is left, C1 = (0.01 · 1)².
    c1 = 0.01**2
    ssim = (2 * y_hr * y_out + c1) / (y_hr**2 + y_out**2 + c1)
    # rel 1e-6: torchmetrics takes the logarithm in float32.
    assert METRICS.get("psnr_y").pairs(out, hr, border=4) == pytest.approx(psnr, rel=1e-6)
    assert METRICS.get("ssim_y").pairs(out, hr, border=4) == pytest.approx(ssim, rel=1e-6)
    # Without the crop the border's garbage counts: the protocol's crop is what made them equal.
    assert METRICS.get("psnr_y").pairs(out, hr, border=0) < psnr - 0.5


def test_a_grey_image_is_its_own_y_channel():
    hr = torch.full((2, 1, 20, 20), 0.2, dtype=torch.float64)  # 0.6 in [0, 1]
    out = torch.full((2, 1, 20, 20), -0.2, dtype=torch.float64)  # 0.4
    assert METRICS.get("psnr_y").pairs(out, hr, border=2) == pytest.approx(
        -20 * math.log10(0.2), rel=1e-6
    )


def test_a_border_that_leaves_nothing_is_refused():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(NotApplicable, match="4-pixel border leaves nothing"):
        METRICS.get("psnr_y").pairs(x, x, border=4)


# --- Data -----------------------------------------------------------------------------------------


def test_the_downsampler_is_bicubic_antialiased_and_keeps_flat_images_flat():
    flat = torch.full((1, 3, 48, 48), 77, dtype=torch.uint8)
    assert torch.equal(downsample(flat, 4), torch.full((1, 3, 12, 12), 77, dtype=torch.uint8))
    x = torch.randint(256, (2, 1, 28, 28), dtype=torch.uint8)
    ref = torch.nn.functional.interpolate(x.double(), size=(7, 7), mode="bicubic",
                                          align_corners=False, antialias=True)  # fmt: skip
    assert torch.equal(downsample(x, 4), ref.round().clamp(0, 255).to(torch.uint8))
    with pytest.raises(ValueError, match="not a multiple"):
        downsample(torch.zeros(1, 1, 30, 30, dtype=torch.uint8), 4)


def test_mnist5k_x4_pairs_each_digit_with_its_own_low_resolution_version():
    data = DATASETS.get("mnist5k_x4")()
    assert data.shape == (1, 28, 28) and data.source_shape == (1, 7, 7) and data.scale == 4
    hr, labels = data.split("held_out")
    assert torch.equal(data.sources["held_out"], downsample(hr, 4))
    assert data.num_classes == 10 and data.classifier_data == "mnist5k"
    lr, hr_f, _ = data.sample_pairs(4, torch.Generator().manual_seed(0))
    assert lr.shape == (4, 1, 7, 7) and hr_f.shape == (4, 1, 28, 28)


def test_sr_patches_hold_out_whole_photographs():
    assert not set(TRAIN_PHOTOS) & set(HELD_OUT_PHOTOS)
    data = DATASETS.get("sr_patches")()
    assert data.shape == (3, PATCH, PATCH) and data.source_shape == (3, PATCH // 4, PATCH // 4)
    train, _ = data.split("train")
    held, _ = data.split("held_out")
    # Every held-out crop is a window of a held-out photograph and of no training photograph.
    photos = _photos()

    def found_in(crop: np.ndarray, names: tuple[str, ...]) -> bool:
        for name in names:
            photo = photos[name]
            hits = np.argwhere(
                (photo[:, :, 0] == crop[0, 0, 0]) & (photo[:, :, 1] == crop[0, 0, 1])
            )
            for r, c in hits:
                window = photo[r : r + PATCH, c : c + PATCH]
                if window.shape[:2] == (PATCH, PATCH) and np.array_equal(window, crop):
                    return True
        return False

    for crop in held[::150].numpy().transpose(0, 2, 3, 1):
        assert found_in(crop, HELD_OUT_PHOTOS) and not found_in(crop, TRAIN_PHOTOS)
    assert found_in(train[0].numpy().transpose(1, 2, 0), TRAIN_PHOTOS)
    assert data.classifier_data == "photo_crops" and data.num_classes == 0


# --- Users' folders of HR images ------------------------------------------------------------------


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("GAN_BENCH_DATA", str(root))
    return root


def _hr_folder(root, sizes: dict[str, list[tuple[int, int]]]) -> None:
    rng = np.random.default_rng(0)
    for split, shapes in sizes.items():
        (root / "myset" / split).mkdir(parents=True)
        for i, (w, h) in enumerate(shapes):
            array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(array).save(root / "myset" / split / f"{i}.png")


def test_a_folder_of_hr_images_of_any_sizes_is_cut_into_tiles(data_root):
    _hr_folder(data_root, {"train": [(100, 60), (48, 48)], "test": [(96, 97)]})
    data = DATASETS.get("myset_x4")()
    assert data.kind == "superres" and data.scale == 4 and data.num_classes == 0
    train, _ = data.split("train")
    assert train.shape == (2 + 1, 3, 48, 48)  # 100×60 holds 2×1 tiles, 48×48 one
    first = np.array(Image.open(data_root / "myset" / "train" / "0.png"))
    assert torch.equal(train[1], torch.from_numpy(first[:48, 48:96].transpose(2, 0, 1).copy()))
    held, _ = data.split("held_out")
    assert held.shape == (4, 3, 48, 48)
    assert torch.equal(data.sources["held_out"], downsample(held, 4))
    assert data.sources["train"].shape == (3, 3, 12, 12)


@pytest.mark.parametrize(
    "name,message",
    [("myset_x5", "scale 5 must be at least 2 and divide the 48-pixel tiles"),
     ("myset_x1", "scale 1 must be at least 2")],
)  # fmt: skip
def test_a_folder_scale_that_does_not_divide_the_tiles_is_refused(data_root, name, message):
    _hr_folder(data_root, {"train": [(48, 48)], "test": [(48, 48)]})
    with pytest.raises(UsageError, match=message):
        DATASETS.get(name)


def test_an_image_smaller_than_a_tile_is_named(data_root):
    _hr_folder(data_root, {"train": [(48, 48), (40, 90)], "test": [(48, 48)]})
    with pytest.raises(UsageError, match=r"1\.png: 40×90 pixels, smaller than one 48×48 tile"):
        DATASETS.get("myset_x4")()


SR_FOLDER_SUITE = """
description = "super-resolution of a user's folder"
task = "super_resolution"
seeds = [0]
datasets = ["myset_x4"]
metrics = ["psnr_y", "ssim_y"]

[budget]
gen_steps = 4

[train]
batch_size = 4
workers = 1

[eval]
every = 4
num_samples = 8

[variants.srresnet]
n_blocks = 1
width = 8
"""


def test_srresnet_trains_on_a_folder_and_measures_it_on_the_y_channel(
    data_root, write_suite, bench, tmp_path
):
    _hr_folder(data_root, {"train": [(96, 96)], "test": [(96, 48)]})
    rc, err = bench("run", f"suite={write_suite(SR_FOLDER_SUITE)}", f"out={tmp_path / 'run'}",
                    "tracking.enabled=false")  # fmt: skip
    assert rc == 0, err
    final = pd.read_csv(tmp_path / "run" / "results.csv").iloc[-1]
    assert final["step"] == 4 and math.isfinite(final["psnr_y"]) and -1 <= final["ssim_y"] <= 1
    assert "eval.num_samples = 8" in final["note"]  # the 2 held-out tiles, all upscaled


REFUSED = {
    "the domain backbone": (
        ('metrics = ["psnr_y", "ssim_y"]', 'metrics = ["psnr_y", "fid"]'),
        "'domain' is a classifier trained on the data's classes, and myset_x4 have none"),
    "a domain content loss": (
        ("[variants.srresnet]", "[variants.srgan]"),
        "entry 'srgan': content_loss = \"domain\" is a feature map of a classifier trained on the "
        "data's classes, and myset_x4 have none"),
    "vgg54 without its weights": (
        ("[variants.srresnet]", '[variants.srgan]\ncontent_loss = "vgg54"'),
        "content_loss 'vgg54' needs vgg_weights"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_a_folder_cannot_give_is_refused_before_the_run(
    case, data_root, write_suite, bench, tmp_path
):
    _hr_folder(data_root, {"train": [(48, 48)], "test": [(48, 48)]})
    (old, new), message = REFUSED[case]
    rc, err = bench("run", f"suite={write_suite(SR_FOLDER_SUITE.replace(old, new))}",
                    f"out={tmp_path / 'run'}", "tracking.enabled=false")  # fmt: skip
    assert rc == 2 and message in err and err.count("bench: error") == 1, err
    assert not (tmp_path / "run").exists()


# --- LPIPS, when AlexNet's weights are given -------------------------------------------------------


def test_lpips_loads_alexnet_from_the_given_file_and_says_why_it_is_empty_without_it(tmp_path):
    import torchvision

    from bench.metrics.pairs import lpips_network

    path = tmp_path / "alexnet.pth"
    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(state, path)
    net = lpips_network(path)
    convs = [m for m in net.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and torch.equal(convs[0].weight, state["features.0.weight"])
    assert torch.equal(convs[-1].bias, state["features.10.bias"])
    metric = METRICS.get("lpips_alex").bind({"lpips_weights": str(path)}, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x, y = (torch.rand(6, 1, 28, 28, generator=g) * 2 - 1 for _ in range(2))
    assert metric.pairs(x, x) == 0.0 and metric.pairs(x, y) > 0
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(UsageError, match="not torchvision's AlexNet state dict"):
        lpips_network(tmp_path / "other.pth")
    unbound = METRICS.get("lpips_alex").bind({"lpips_weights": None}, torch.device("cpu"))
    with pytest.raises(NotApplicable, match="set eval.lpips_weights"):
        unbound.pairs(x, y)
