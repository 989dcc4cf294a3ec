"""Shared fixtures: tiny suite files and an in-process `bench` call."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.speed import EXTRA_KEY, time_calibration

TINY_SUITE = """
description = "tiny suite for tests"
seeds = [0, 1]
datasets = ["8gaussians"]
metrics = ["modes_captured", "hq_fraction", "mode_kl", "energy_distance"]

[budget]
gen_steps = 6

[eval]
every = 3
num_samples = 200
diag_samples = 64
hist_bins = 11

[train]
batch_size = 32
workers = 2

[variant_defaults]
width = 16

[variants.wgan]

[variants.wgan_gp]
gp_weight = 0.1
"""


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write a suite file into tmp_path/suites and return its path."""

    def write(text: str = TINY_SUITE, name: str = "tiny") -> Path:
        path = tmp_path / "suites" / f"{name}.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run `bench ARGS...` in-process with tmp_path as the working directory; returns (rc, stderr)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str]:
        rc = main(list(args))
        return rc, capsys.readouterr().err

    return run


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """One backbone/feature cache per test session: each domain classifier is trained once.

    GAN_BENCH_CACHE, when set, is used instead: .ci/run points it at an empty folder that the
    regression gates then reuse, so CI trains each classifier once.
    """
    shared = os.environ.get("GAN_BENCH_CACHE")
    return Path(shared).resolve() if shared else tmp_path_factory.mktemp("cache")


@pytest.fixture
def one_thread():
    """One torch thread, as each suite worker runs; the calibration kernel runs on one too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _calibration_kernel(request: pytest.FixtureRequest):
    """Beside every enabled benchmark, time the speed gate's calibration kernel (bench/speed.py)."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    benchmark = request.getfixturevalue("benchmark")
    if benchmark.disabled:
        yield
        return
    before = time_calibration()
    yield
    benchmark.extra_info[EXTRA_KEY] = min(before, time_calibration())
