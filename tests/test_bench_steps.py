"""Speed of one training step of every variant on MNIST-shaped images, batch 64, default sizes
(MuseGAN on its 2-bar piano rolls).

Normal test runs pass --benchmark-disable (pyproject addopts), so each case runs once as a plain
test. To measure: `OMP_NUM_THREADS=1 pytest tests/test_bench_steps.py --benchmark-enable`; the
images/s of each case (real images drawn per second, critic steps included) is in its extra_info
(`--benchmark-json out.json`). One thread, as each suite worker runs.
"""

import pytest
import torch

from bench.datasets import DataSpec
from bench.registry import VARIANTS, load_all
from bench.seeding import seed_everything
from variants.nets import DATA_KINDS

load_all()
MNIST = DataSpec((1, 28, 28), 10)
BATCH_SIZE = 64
# Noise → sample GANs; translation variants and the likelihood models are timed by their suites
# (img_per_s, sample_s_per_image).
SAMPLERS = [v for v in VARIANTS.names() if {"samples", "critic"} <= VARIANTS.get(v).capabilities]
# A variant on the shared architectures runs on each; one with its own networks (no `arch`) once, at
# the sizes its suites use where its paper's are for GPUs (StyleGAN's 512 channels).
OWN_SIZES = {"stylegan": {"z_dim": 64, "w_dim": 64, "channels": 32, "d_channels": 32}}
# A variant for other data than images trains on its own data's shape: MuseGAN on 2-bar phrases.
OWN_DATA = {"musegan": DataSpec((4, 2, 16, 84))}


def configs(name: str) -> list[dict]:
    if "arch" in VARIANTS.get(name).Config.model_fields:
        return [{"arch": arch} for arch in sorted(DATA_KINDS)]
    return [OWN_SIZES.get(name, {})]


CASES = [(name, config) for name in SAMPLERS for config in configs(name)]
IDS = [f"{name}-{config['arch']}" if "arch" in config else name for name, config in CASES]


@pytest.mark.benchmark(group="train_step mnist b64")
@pytest.mark.parametrize("name,config", CASES, ids=IDS)
def test_train_step_speed(benchmark, one_thread, name, config):
    seed_everything(0, torch.device("cpu"))
    cls = VARIANTS.get(name)
    spec = OWN_DATA.get(name, MNIST)
    variant = cls(cls.Config.model_validate(config), spec, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    drawn = [0]

    def next_real():
        drawn[0] += BATCH_SIZE
        x = torch.rand((BATCH_SIZE, *spec.shape), generator=g) * 2 - 1
        return (x, torch.randint(10, (BATCH_SIZE,), generator=g)) if variant.conditional else x

    variant.train_step(next_real)  # warm-up, and how many real images one step draws
    images_per_step, drawn[0] = drawn[0], 0
    losses = benchmark(variant.train_step, next_real)
    assert {"loss/critic", "loss/generator"} <= set(losses)
    benchmark.extra_info["images_per_step"] = images_per_step
    if benchmark.stats is not None:  # None when benchmarking is disabled
        benchmark.extra_info["images_per_s"] = images_per_step / benchmark.stats.stats.mean
