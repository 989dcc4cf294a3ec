"""Benchmarks of image evaluation: feature extraction, and a whole evaluation with and without
cached real features. `pytest tests/test_bench_image_metrics.py --benchmark-enable` times them;
in the normal test run each runs once, as a test of the behaviour it times."""

import pytest
import torch

from bench.datasets.images import to_float
from bench.metrics.images import ImageEvaluator, extract
from bench.registry import DATASETS, load_all

load_all()
CPU = torch.device("cpu")
METRICS = ["fid", "kid", "is", "prc", "prdc", "class_coverage"]
NUM_REAL = 4000  # the whole mnist5k training split as reference
KID_SUBSETS = 10


@pytest.fixture(scope="module")
def fakes():
    held_out, _ = DATASETS.get("mnist5k")().split("held_out")
    g = torch.Generator().manual_seed(0)
    return (to_float(held_out) + 0.2 * torch.randn(held_out.shape, generator=g)).clamp(-1, 1)


def make(cache):
    return ImageEvaluator(DATASETS.get("mnist5k")(), METRICS, ["domain"], NUM_REAL, cache, CPU,
                          kid_subsets=KID_SUBSETS)  # fmt: skip


@pytest.mark.benchmark(group="image-features")
def test_bench_feature_extraction(benchmark, one_thread, cache, fakes):
    ev = make(cache)
    (bb,) = ev.prepare()
    extractor = ev.prepare_all()[0][1]
    images = ((fakes + 1) * 127.5).round().to(torch.uint8)
    feats = benchmark(extract, extractor, images, CPU)
    assert feats["penultimate"].shape == (len(fakes), 128)


@pytest.mark.benchmark(group="image-eval")
def test_bench_evaluation_without_cached_reals(benchmark, one_thread, cache, fakes):
    make(cache).prepare()  # the classifier is trained outside the timing

    def setup():
        for cached in (cache / "features").glob(f"mnist5k-*-n{NUM_REAL}-*"):
            cached.unlink()
        return (make(cache),), {}

    ev, row = benchmark.pedantic(lambda ev: (ev, ev(fakes)[0]), setup=setup, rounds=3)
    assert ev.real_extractions == 1 and row["fid/lenet-mnist5k"] > 0


@pytest.mark.benchmark(group="image-eval")
def test_bench_evaluation_with_cached_reals(benchmark, one_thread, cache, fakes):
    make(cache).prepare()  # make sure the real features are cached

    def setup():
        return (make(cache),), {}

    ev, row = benchmark.pedantic(lambda ev: (ev, ev(fakes)[0]), setup=setup, rounds=3)
    assert ev.real_extractions == 0 and row["fid/lenet-mnist5k"] > 0
