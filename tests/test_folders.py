"""Users' own translation data: folders in pix2pix's and CycleGAN's layouts, read as datasets,
refused clearly when malformed or measured with what needs labels, and trained on end to end."""

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from bench.datasets.images import to_float
from bench.errors import UsageError
from bench.registry import DATASETS, load_all
from tests.test_tasks import PAIRED_SUITE, UNPAIRED_SUITE

load_all()
SIZE = 16


def write_png(image: torch.Tensor, path: str) -> None:
    """One uint8 image [C, H, W] as a PNG file (grey when C = 1)."""
    array = image.numpy()
    Image.fromarray(array[0] if len(array) == 1 else array.transpose(1, 2, 0)).save(path)


def write_images(folder: Path, images: torch.Tensor, suffix: str = ".png") -> None:
    """uint8 images [N, C, H, W] as numbered files."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        write_png(image, str(folder / f"{i:03d}{suffix}"))


def random_images(n: int, channels: int, seed: int, width: int = SIZE) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(256, (n, channels, SIZE, width), generator=g, dtype=torch.uint8)


def paired_folder(root: Path, held_out: str = "test") -> dict[str, torch.Tensor]:
    """root/facades with side-by-side source|target files; returns the whole images of each split."""
    images = {
        "train": random_images(12, 3, 0, 2 * SIZE),
        held_out: random_images(6, 3, 1, 2 * SIZE),
    }
    for split, x in images.items():
        write_images(root / "facades" / split, x)
    return images


def unpaired_folder(root: Path) -> dict[str, torch.Tensor]:
    images = {"trainA": random_images(12, 1, 2), "trainB": random_images(10, 3, 3),
              "testA": random_images(6, 1, 4), "testB": random_images(5, 3, 5)}  # fmt: skip
    for split, x in images.items():
        write_images(root / "horse2zebra" / split, x)
    return images


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("GAN_BENCH_DATA", str(root))
    return root


# --- Reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("held_out", ["test", "val"])
def test_a_paired_folder_splits_each_image_into_source_and_target(data_root, held_out):
    written = paired_folder(data_root, held_out)
    source = DATASETS.get("facades")
    assert source.kind == "paired"
    ds = source()
    for split, name in (("train", "train"), ("held_out", held_out)):
        targets, labels = ds.split(split)
        assert torch.equal(ds.sources[split], written[name][..., :SIZE])
        assert torch.equal(targets, written[name][..., SIZE:])
        assert (labels == 0).all()
    assert ds.spec.shape == ds.spec.source_shape == (3, SIZE, SIZE) and ds.num_classes == 0
    src, tgt, _ = ds.sample_pairs(4, torch.Generator().manual_seed(0))
    assert src.shape == tgt.shape == (4, 3, SIZE, SIZE)

    flipped = DATASETS.get("facades_BtoA")()
    assert torch.equal(flipped.sources["train"], written["train"][..., SIZE:])
    assert torch.equal(flipped.split("train")[0], written["train"][..., :SIZE])
    assert flipped.fingerprint() != ds.fingerprint()


def test_an_unpaired_folder_reads_each_domain_and_keeps_grey_images_grey(data_root):
    written = unpaired_folder(data_root)
    source = DATASETS.get("horse2zebra")
    assert source.kind == "unpaired"
    ds = source()
    for key in ("A", "B"):
        assert torch.equal(ds.domains[key].split("train")[0], written[f"train{key}"])
        assert torch.equal(ds.domains[key].split("held_out")[0], written[f"test{key}"])
    assert ds.domains["A"].shape == (1, SIZE, SIZE) and ds.domains["B"].shape == (3, SIZE, SIZE)
    a, b = ds.sample_domains(3, torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, SIZE, SIZE) and b.shape == (3, 3, SIZE, SIZE)
    assert torch.equal(a, to_float(a.add(1).mul(127.5).round().to(torch.uint8)))  # from the files


def test_a_folder_mixing_grey_and_colour_images_is_read_as_colour(data_root):
    from bench.datasets.folders import read_images

    folder = data_root / "mixed"
    grey, colour = random_images(1, 1, 0), random_images(1, 3, 1)
    write_png(colour[0], str(folder.mkdir() or folder / "a.png"))
    write_png(grey[0], str(folder / "b.png"))
    images = read_images(folder)
    assert images.shape == (2, 3, SIZE, SIZE)
    assert torch.equal(images[0], colour[0])
    assert all(torch.equal(images[1, c], grey[0, 0]) for c in range(3))  # repeated over R, G, B


BAD_FOLDERS = {
    "images of two sizes": "001.png: 8×16 pixels, but 000.png is 16×16; resize",
    "a file that is not an image": "001.png: not a readable image",
    "an empty split": "testB: no images",
    "an unknown layout": "does not have the layout (paired: train/ and test/ (or val/) of",
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_a_malformed_folder_is_refused_naming_the_file(
    case, data_root, write_suite, bench, tmp_path
):
    unpaired_folder(data_root)
    split = data_root / "horse2zebra" / "testB"
    if case == "images of two sizes":
        write_png(torch.zeros(3, 16, 8, dtype=torch.uint8), str(split / "001.png"))
    elif case == "a file that is not an image":
        (split / "001.png").write_text("not a picture")
    elif case == "an empty split":
        for f in split.iterdir():
            f.unlink()
    else:
        (data_root / "horse2zebra" / "testB").rename(data_root / "horse2zebra" / "test_B")
    suite = write_suite(
        UNPAIRED_SUITE.replace('"mnist2textured"', '"horse2zebra"').replace(
            '["label_preservation", "fid", "cycle_l1"]', '["cycle_l1"]'
        )
    )
    rc, err = bench("run", f"suite={suite}", f"out={tmp_path / 'run'}", "tracking.enabled=false")
    assert rc == 2 and BAD_FOLDERS[case] in err and err.count("bench: error") == 1, err
    assert not (tmp_path / "run").exists()


def test_an_unknown_dataset_names_the_folders_it_looked_for(data_root):
    with pytest.raises(UsageError, match=rf"unknown dataset 'facades'.*a folder under {data_root}"):
        DATASETS.get("facades")


# --- Validation and end to end -------------------------------------------------------------------

UNLABELLED = {
    "label preservation": (PAIRED_SUITE, '["label_preservation", "l1", "psnr", "ssim", "fid"]',
                           '["label_preservation", "l1"]',
                           "label_preservation need the data's classes, and facades have none"),
    "the domain backbone": (PAIRED_SUITE, '["label_preservation", "l1", "psnr", "ssim", "fid"]',
                            '["l1", "fid"]', "'domain' is a classifier trained on the data's "
                            "classes, and facades have none; use backbones = [\"inception\"]"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(UNLABELLED))
def test_label_measures_on_a_folder_are_refused(case, data_root, write_suite, bench, tmp_path):
    paired_folder(data_root)
    text, old, new, message = UNLABELLED[case]
    suite = write_suite(text.replace('"edges2digits"', '"facades"').replace(old, new))
    rc, err = bench("run", f"suite={suite}", f"out={tmp_path / 'run'}", "tracking.enabled=false")
    assert rc == 2 and message in err and err.count("bench: error") == 1, err
    assert not (tmp_path / "run").exists()


def test_pix2pix_and_cyclegan_train_on_folders(data_root, write_suite, bench, tmp_path):
    paired_folder(data_root)
    unpaired_folder(data_root)
    runs = {
        "facades_BtoA": PAIRED_SUITE.replace('"edges2digits"', '"facades_BtoA"').replace(
            '["label_preservation", "l1", "psnr", "ssim", "fid"]', '["l1", "psnr", "ssim"]'),
        "horse2zebra": UNPAIRED_SUITE.replace('"mnist2textured"', '"horse2zebra"').replace(
            '["label_preservation", "fid", "cycle_l1"]', '["cycle_l1"]'),
    }  # fmt: skip
    for name, text in runs.items():
        out = tmp_path / name
        rc, err = bench("run", f"suite={write_suite(text, name)}", f"out={out}",
                        "tracking.enabled=false")  # fmt: skip
        assert rc == 0, err
        rows = pd.read_csv(out / "results.csv")
        assert list(rows["step"]) == [0, 4, 8] and (rows["status"] == "ok").all()
        final = rows.iloc[-1]
        if name == "facades_BtoA":
            assert 0 < final["l1"] < 1 and math.isfinite(final["psnr"]) and -1 <= final["ssim"] <= 1
            assert "eval.num_samples = 64" in final["note"]  # all 6 held-out pairs translated
        else:
            assert 0 < final["cycle_l1/A2B2A"] < 1 and 0 < final["cycle_l1/B2A2B"] < 1
        variant = "pix2pix" if name == "facades_BtoA" else "cyclegan"
        assert len(list((out / "cells" / f"{variant}__{name}__s0" / "grids").glob("*.png"))) == 3


def test_images_a_variant_cannot_take_are_refused_before_the_run(
    data_root, write_suite, bench, tmp_path
):
    write_images(data_root / "wide" / "train", random_images(4, 3, 0, 24))  # halves 12 wide
    write_images(data_root / "wide" / "test", random_images(2, 3, 1, 24))
    for key, seed in (("A", 2), ("B", 3)):
        write_images(data_root / "odd" / f"train{key}", random_images(4, 1, seed, 18))
        write_images(data_root / "odd" / f"test{key}", random_images(2, 1, seed, 18))
    cases = {
        "pix2pix": (PAIRED_SUITE.replace('"edges2digits"', '"wide"').replace(
            '["label_preservation", "l1", "psnr", "ssim", "fid"]', '["l1"]'),
            "variants.pix2pix cannot train on 'wide': the U-Net takes square images, not 12×16"),
        "cyclegan": (UNPAIRED_SUITE.replace('"mnist2textured"', '"odd"').replace(
            '["label_preservation", "fid", "cycle_l1"]', '["cycle_l1"]'),
            "variants.cyclegan cannot train on 'odd': the generators take sides divisible by 4, "
            "not 18×16"),
    }  # fmt: skip
    for name, (text, message) in cases.items():
        out = tmp_path / name
        rc, err = bench("run", f"suite={write_suite(text, name)}", f"out={out}",
                        "tracking.enabled=false")  # fmt: skip
        assert rc == 2 and message in err and err.count("bench: error") == 1, err
        assert not out.exists()
