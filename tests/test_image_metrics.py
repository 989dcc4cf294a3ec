"""Image metrics: equal to torch-fidelity called directly, sane on real digits, cached reals."""

import pytest
import torch
import torch_fidelity
from torchvision.transforms.functional import gaussian_blur

from bench.backbones import domain
from bench.datasets.images import to_float, to_uint8
from bench.metrics.images import ImageEvaluator, _Images
from bench.registry import DATASETS, load_all

load_all()
CPU = torch.device("cpu")
ALL = ["fid", "kid", "is", "prc", "prdc", "class_coverage"]


def evaluator(cache, name="digits", num_real=1000, metrics=ALL, **kw):
    return ImageEvaluator(DATASETS.get(name)(), metrics, ["domain"], num_real, cache, CPU, **kw)


def noisy(images: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (to_float(images) + std * torch.randn(images.shape, generator=g)).clamp(-1, 1)


def test_harness_equals_torch_fidelity_called_directly(cache):
    ev = evaluator(cache, num_real=1000, kid_subsets=20)
    (bb,) = ev.prepare()
    held_out, _ = ev.dataset.split("held_out")
    fake = to_uint8(noisy(held_out, 0.3))
    row, _ = ev(fake)

    real, _ = ev.dataset.reference("train", 1000)
    direct = torch_fidelity.calculate_metrics(
        input1=_Images(fake), input2=_Images(real), cuda=False, cache=False, verbose=False,
        fid=True, kid=True, isc=True, prc=True, kid_subsets=20, kid_subset_size=len(fake),
        save_cpu_ram=True, **bb.kwargs(),
    )  # fmt: skip
    name = bb.name
    assert row[f"fid/{name}"] == pytest.approx(direct["frechet_inception_distance"], rel=1e-6)
    assert row[f"kid/{name}"] == pytest.approx(direct["kernel_inception_distance_mean"], rel=1e-6)
    assert row[f"kid_std/{name}"] == pytest.approx(
        direct["kernel_inception_distance_std"], rel=1e-6
    )
    assert row[f"is/{name}"] == pytest.approx(direct["inception_score_mean"], rel=1e-6)
    assert row[f"is_std/{name}"] == pytest.approx(direct["inception_score_std"], rel=1e-6)
    assert row[f"precision/{name}"] == pytest.approx(direct["precision"], rel=1e-6)
    assert row[f"recall/{name}"] == pytest.approx(direct["recall"], rel=1e-6)
    # Every row says what measured it and on how many samples.
    assert row[f"backbone_sha256/{name}"] == bb.weights_sha256 and len(bb.weights_sha256) == 64
    assert row[f"n_real/{name}"] == 1000 and row[f"n_fake/{name}"] == len(fake)


def test_mnist5k_domain_backbone_behaves_like_a_fid_backbone(cache):
    ev = evaluator(cache, "mnist5k", num_real=4000, kid_subsets=10)
    (bb,) = ev.prepare()
    assert bb.name == "lenet-mnist5k" and bb.info["held_out_accuracy"] >= 0.97
    held_out, _ = ev.dataset.split("held_out")
    clean, _ = ev(held_out)
    name = bb.name

    # Real held-out digits against the training split: close, confidently classified, covered.
    assert clean[f"fid/{name}"] < 5
    assert clean[f"is/{name}"] > 8.5  # 10 classes, equally many of each
    # k-NN precision/recall of two finite samples of one distribution stay a little below 1
    # (a real sample outside every k-ball of the other); 1,000 vs 4,000 images gives about 0.9.
    assert clean[f"precision/{name}"] > 0.85 and clean[f"recall/{name}"] > 0.85
    assert clean[f"classes_covered/{name}"] == 10 and clean[f"class_kl/{name}"] < 0.01

    # FID grows monotonically with the strength of added noise, and of blur.
    by_noise = [clean[f"fid/{name}"]] + [
        ev(noisy(held_out, s))[0][f"fid/{name}"] for s in (0.1, 0.3, 0.6)
    ]
    assert by_noise == sorted(by_noise) and by_noise[-1] > 20 * by_noise[0]
    blurred = [gaussian_blur(to_float(held_out), 9, s) for s in (0.5, 1.0, 2.0)]
    by_blur = [clean[f"fid/{name}"]] + [ev(b)[0][f"fid/{name}"] for b in blurred]
    assert by_blur == sorted(by_blur) and by_blur[-1] > 10 * by_blur[0]


def test_a_second_evaluation_reads_real_features_from_the_cache(cache):
    for n in (400, 500):  # no other test uses these counts; a shared cache may hold them already
        for stale in (cache / "features").glob(f"digits-*-n{n}-*"):
            stale.unlink()
    first = evaluator(cache, num_real=500)
    first.prepare()
    assert first.real_extractions == 1
    second = evaluator(cache, num_real=500)
    second.prepare()
    assert second.real_extractions == 0
    fake = noisy(second.dataset.split("held_out")[0], 0.2)
    assert first(fake)[0] == second(fake)[0]
    # A different number of reals is a different key: extracted afresh.
    other = evaluator(cache, num_real=400)
    other.prepare()
    assert other.real_extractions == 1


def test_small_samples_adapt_kid_and_flag_fid(cache):
    ev = evaluator(cache, num_real=60, metrics=["fid", "kid", "prdc"])
    fake = noisy(ev.dataset.split("held_out")[0][:40], 0.1)
    row, notes = ev(fake)
    name = ev.prepare()[0].name
    assert row[f"n_real/{name}"] == 60 and row[f"n_fake/{name}"] == 40
    text = " ".join(notes)
    assert "40 samples ≤ 128 feature dimensions" in text  # FID is computed but flagged
    assert f"kid/{name}: subset size 40" in text and row[f"kid/{name}"] == row[f"kid/{name}"]


def test_stacked_mnist_counts_a_thousand_modes(cache):
    ev = evaluator(cache, "stacked_mnist", num_real=500, metrics=["class_coverage", "is"])
    held_out, labels = ev.dataset.split("held_out")
    row, _ = ev(held_out[:2000])
    name = ev.prepare()[0].name
    assert name == "lenet-mnist5k"
    truth = labels[:2000].unique().numel()
    # The classifier reads each channel; its triples cover about as many modes as the truth has.
    assert abs(row[f"classes_covered/{name}"] - truth) <= 0.05 * truth
    # Far above the 10 of single digits; IS's 10 splits of 200 samples cap it near 200 here.
    assert row[f"is/{name}"] > 100

    # Collapse to ten triples: ten modes.
    collapsed = held_out[:10].repeat(50, 1, 1, 1)
    row, _ = ev(collapsed)
    assert row[f"classes_covered/{name}"] <= 10 and row[f"class_kl/{name}"] > 4


def test_domain_classifier_training_is_deterministic(cache, tmp_path):
    ds = DATASETS.get("digits")()
    cached, meta = domain.load_or_train(cache, ds)  # trained by an earlier test, or now
    fresh, _ = domain.load_or_train(tmp_path, ds)
    assert fresh.read_bytes() == cached.read_bytes()
    assert meta["held_out_accuracy"] > 0.95
