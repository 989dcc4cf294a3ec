"""Image datasets: fixed splits, stacked MNIST, and the torchvision loaders on tiny fixtures."""

import pickle
import struct

import numpy as np
import pytest
import torch

from bench.datasets.images import ImageDataset
from bench.errors import UsageError
from bench.registry import DATASETS, load_all

load_all()


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_packaged_sets_have_fixed_disjoint_class_balanced_splits(name):
    ds = DATASETS.get(name)()
    train, held = ds.split("train"), ds.split("held_out")
    assert ds.num_classes == 10 and ds.shape[0] == 1
    assert train[0].dtype == torch.uint8 and len(train[0]) + len(held[0]) in (1797, 5000)
    assert abs(len(held[0]) / (len(train[0]) + len(held[0])) - 0.2) < 0.01
    # Class balance is kept in both halves.
    counts = torch.bincount(held[1], minlength=10).float()
    assert counts.max() - counts.min() <= 0.05 * counts.mean() + 1
    # No image is in both halves (compared as raw bytes).
    train_bytes = {bytes(x.numpy()) for x in train[0]}
    assert not any(bytes(x.numpy()) in train_bytes for x in held[0][:200])
    # The split and the fingerprint do not change between loads.
    again = DATASETS.get(name)()
    assert torch.equal(again.split("held_out")[0], held[0])
    assert again.fingerprint() == ds.fingerprint()


def test_samples_are_seeded_floats_in_minus_one_one():
    ds = DATASETS.get("digits")()
    a, la = ds.sample_labelled(64, torch.Generator().manual_seed(1))
    b, lb = ds.sample_labelled(64, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert a.shape == (64, 1, 8, 8) and a.min() >= -1 and a.max() <= 1 and a.max() == 1


def test_stacked_mnist_is_three_digits_with_triple_labels():
    ds = DATASETS.get("stacked_mnist")()
    digits = DATASETS.get("mnist5k")()
    assert ds.shape == (3, 28, 28) and ds.num_classes == 1000
    x, y = ds.sample_labelled(500, torch.Generator().manual_seed(0))
    assert x.shape == (500, 3, 28, 28) and y.max() < 1000
    assert len(y.unique()) > 350  # 500 draws over 1,000 modes
    # Every channel is a training digit, and the label spells the three classes.
    train_images, train_labels = digits.split("train")
    lookup = {bytes(img.numpy()): int(c) for img, c in zip(train_images, train_labels, strict=True)}
    u8 = ((x[:20] + 1) * 127.5).round().to(torch.uint8)
    for img, label in zip(u8, y[:20], strict=True):
        classes = [lookup[bytes(img[c : c + 1].numpy())] for c in range(3)]
        assert label == classes[0] * 100 + classes[1] * 10 + classes[2]


# --- torchvision loaders on fixtures written here ---------------------------------------------------


def write_idx(folder, prefix, n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes()
    )
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 0x801, n) + labels.tobytes()
    )
    return images, labels


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_style_loader_reads_idx_files(name, folder, tmp_path, monkeypatch):
    raw = tmp_path / folder / "raw"
    train = write_idx(raw, "train", 30, 0)
    test = write_idx(raw, "t10k", 12, 1)
    monkeypatch.setenv("GAN_BENCH_DATA", str(tmp_path))
    ds = DATASETS.get(name)()
    assert isinstance(ds, ImageDataset) and ds.shape == (1, 28, 28)
    assert np.array_equal(ds.split("train")[0][:, 0].numpy(), train[0])
    assert np.array_equal(ds.split("held_out")[1].numpy(), test[1].astype(np.int64))


def test_cifar10_loader_reads_pickled_batches(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ]:
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 4).tolist()
        batches[name] = (data, labels)
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [f"c{i}" for i in range(10)]})
    )
    monkeypatch.setenv("GAN_BENCH_DATA", str(tmp_path))
    ds = DATASETS.get("cifar10")()
    images, labels = ds.split("train")
    assert ds.shape == (3, 32, 32) and len(images) == 20
    # Channel-first, pixel for pixel as stored (CIFAR rows are 1024 R, then G, then B values).
    assert np.array_equal(images[0].numpy().reshape(-1), batches["data_batch_1"][0][0])
    assert ds.split("held_out")[1].tolist() == batches["test_batch"][1]


def test_missing_dataset_names_the_files_and_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_BENCH_DATA", str(tmp_path))
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://127.0.0.1:9/"])  # offline
    with pytest.raises(UsageError) as exc:
        DATASETS.get("mnist")()
    msg = str(exc.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg
    assert "GAN_BENCH_DATA" in msg


def test_missing_dataset_exits_2_before_any_folder_is_written(
    write_suite, bench, tmp_path, monkeypatch
):
    monkeypatch.setenv("GAN_BENCH_DATA", str(tmp_path / "data"))
    path = write_suite(
        'description = "x"\nseeds = [0]\ndatasets = ["cifar10"]\nmetrics = ["fid"]\n'
        "[budget]\ngen_steps = 2\n[eval]\nevery = 1\n[variants.gan]\n"
    )
    rc, err = bench("run", f"suite={path}", f"out={tmp_path / 'run'}")
    assert rc == 2 and "dataset 'cifar10' was not found" in err and "data_batch_1" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "results").exists()
