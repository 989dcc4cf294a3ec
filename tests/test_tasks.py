"""The task layer: suites that do not fit their task are refused; a model without a critic runs;
paired translation (edges2digits, Pix2Pix, paired metrics) end to end and through a resume."""

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import load_suite
from bench.datasets.base import DataSpec
from bench.metrics.pairs import mean_l1, mean_psnr, mean_ssim
from bench.registry import DATASETS, TASKS, VARIANTS, load_all
from bench.runner import CellJob, run_cell
from bench.seeding import seed_everything
from bench.variant import Variant, VariantConfig
from tests.test_resume import SITECUSTOMIZE, TIMING, run

load_all()
CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]

PAIRED_SUITE = """
description = "tiny paired translation"
task = "paired_translation"
seeds = [0]
datasets = ["edges2digits"]
metrics = ["label_preservation", "l1", "psnr", "ssim", "fid"]

[budget]
gen_steps = 8

[train]
batch_size = 8
workers = 1

[eval]
every = 4
num_samples = 64
reference_split = "held_out"
kid_subsets = 2

[variant_defaults]
ngf = 4
ndf = 4
d_layers = 1

[variants.pix2pix]
"""


# --- Validation ----------------------------------------------------------------------------------

MISFITS = {
    "a translation variant in a generation suite": ((
        ('task = "paired_translation"\n', ""),
        ('metrics = ["label_preservation", "l1", "psnr", "ssim", "fid"]', 'metrics = ["fid"]'),
        ('datasets = ["edges2digits"]', 'datasets = ["mnist5k"]'),
    ), "variant 'pix2pix' does not fit task 'generation'"),
    "a generation variant in a translation suite": ((
        ("[variants.pix2pix]", "[variants.dcgan]\nngf = 4\nndf = 4"),
        ("[variant_defaults]\nngf = 4\nndf = 4\nd_layers = 1\n", ""),
    ), "variant 'dcgan' does not fit task 'paired_translation'"),
    "an unknown task": ((
        ('task = "paired_translation"', 'task = "unpaired_translation"'),
    ), "unknown task 'unpaired_translation'; known tasks: generation, paired_translation"),
    "a paired metric in a generation suite": ((
        ('task = "paired_translation"\n', ""),
        ('datasets = ["edges2digits"]', 'datasets = ["mnist5k"]'),
        ('metrics = ["label_preservation", "l1", "psnr", "ssim", "fid"]', 'metrics = ["fid", "psnr"]'),
        ("[variants.pix2pix]", "[variants.dcgan]"),
        ("[variant_defaults]\nngf = 4\nndf = 4\nd_layers = 1\n", ""),
    ), "'psnr' applies to task paired_translation, not to 'generation'"),
    "unpaired data in a translation suite": ((
        ('datasets = ["edges2digits"]', 'datasets = ["mnist5k"]'),
    ), "'mnist5k' holds samples data, but task 'paired_translation' needs paired data"),
    "a generation metric in a translation suite": ((
        ('metrics = ["label_preservation", "l1", "psnr", "ssim", "fid"]',
         'metrics = ["label_accuracy"]'),
    ), "'label_accuracy' applies to task generation, not to 'paired_translation'"),
}  # fmt: skip


def edited(replacements: tuple[tuple[str, str], ...]) -> str:
    text = textwrap.dedent(PAIRED_SUITE)
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_a_suite_that_does_not_fit_its_task_is_refused(case, write_suite, bench, tmp_path):
    replacements, message = MISFITS[case]
    path = write_suite(edited(replacements))
    rc, err = bench("run", f"suite={path}", f"out={tmp_path / 'run'}", "tracking.enabled=false")
    assert rc == 2, err
    assert message in err and err.count("bench: error") <= 1, err
    assert not (tmp_path / "run").exists()


def test_tasks_and_the_translation_variant_are_listed(bench):
    rc, _ = bench("list")
    assert rc == 0
    assert {"generation", "paired_translation"} <= set(TASKS.names())
    assert "translates" in VARIANTS.get("pix2pix").capabilities


# --- A model without a critic --------------------------------------------------------------------


class NoCriticConfig(VariantConfig):
    z_dim: int = 4


class NoCritic(Variant):
    """A test-only model: a linear map of noise trained to match the data's mean, and no critic."""

    Config = NoCriticConfig
    capabilities = frozenset({"samples"})

    def __init__(self, cfg: NoCriticConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.G = torch.nn.Linear(cfg.z_dim, data.shape[0])
        self.opt = torch.optim.SGD(self.G.parameters(), lr=0.1)

    def train_step(self, next_real):
        real = next_real()
        loss = (self.G(torch.randn(len(real), self.cfg.z_dim)).mean(0) - real.mean(0)).pow(2).sum()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss/moment": loss.item()}


def test_a_model_without_a_critic_runs_without_critic_columns(tmp_path):
    VARIANTS._items.setdefault("no_critic_toy", NoCritic)  # test-only; run in this process
    try:
        rows = []
        job = CellJob(
            cell_id="toy", label="toy", variant="no_critic_toy", config={}, dataset="8gaussians",
            seed=0, gen_steps=6, batch_size=16,
            eval=load_suite(str(REPO / "suites" / "wgan_vs_gp.toml")).spec.eval.model_dump()
            | {"every": 3, "num_samples": 100},
            metrics=["modes_captured", "energy_distance"], device="cpu",
            cell_dir=str(tmp_path / "cell"),
        )  # fmt: skip
        status = run_cell(job, lambda kind, payload: rows.extend(payload) if kind == "rows" else 0)
    finally:
        VARIANTS._items.pop("no_critic_toy")
    assert status == "ok"
    assert [r["step"] for r in rows] == [0, 3, 6]
    assert all(math.isfinite(r["energy_distance"]) for r in rows)
    assert not {"critic_loss", "clip_saturation", "act_grad_log10_slope"} & set().union(*rows)
    assert (tmp_path / "cell" / "generator.pt").is_file()


# --- edges2digits and the paired metrics ---------------------------------------------------------


def test_edges2digits_pairs_each_digit_with_its_own_edge_map():
    from skimage.feature import canny

    data = DATASETS.get("edges2digits")()
    digits = DATASETS.get("mnist5k")()
    for split in ("train", "held_out"):
        targets, labels = data.split(split)
        assert torch.equal(targets, digits.split(split)[0])  # mnist5k's own split, row for row
        assert torch.equal(labels, digits.split(split)[1])
        for i in (0, len(targets) // 2, len(targets) - 1):
            edges = canny(targets[i, 0].numpy() / 255.0, sigma=1.0)
            assert np.array_equal(data.sources[split][i, 0].numpy() == 255, edges)
        assert set(data.sources[split].unique().tolist()) == {0, 255}
    g = torch.Generator().manual_seed(0)
    source, target, labels = data.sample_pairs(5, g)
    assert source.shape == target.shape == (5, 1, 28, 28) and labels.shape == (5,)
    assert data.fingerprint() == DATASETS.get("edges2digits")().fingerprint()
    assert data.spec.source_shape == (1, 28, 28) and data.kind == "paired"


def test_paired_metrics_match_hand_computed_values():
    a = torch.zeros(2, 1, 16, 16, dtype=torch.float64)
    b = a.clone()
    b[0] += 0.1  # image 0: MSE 0.01 → PSNR 20 dB; image 1: identical
    b[1, 0, :8] += 0.5  # image 1: half the pixels off by 0.5 → MSE 0.125
    assert mean_l1(a, b) == pytest.approx((0.1 + 0.25) / 2)
    expected_psnr = (10 * math.log10(1 / 0.01) + 10 * math.log10(1 / 0.125)) / 2
    assert mean_psnr(a, b) == pytest.approx(expected_psnr, rel=1e-6)
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert mean_ssim(x, x) == pytest.approx(1.0)
    assert mean_ssim(x, 1 - x) < 0


# --- Pix2Pix -------------------------------------------------------------------------------------


def build_pix2pix(seed=0, **overrides):
    seed_everything(seed, CPU)
    cls = VARIANTS.get("pix2pix")
    cfg = cls.Config.model_validate({"ngf": 4, "ndf": 4, "d_layers": 1, **overrides})
    return cls(cfg, DataSpec((1, 28, 28), 10, (1, 28, 28)), CPU)


def pairs(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)

    def next_real():
        return (torch.rand((n, 1, 28, 28), generator=g) * 2 - 1,
                torch.rand((n, 1, 28, 28), generator=g) * 2 - 1)  # fmt: skip

    return next_real


def test_pix2pix_steps_translate_and_repeat_exactly():
    a = build_pix2pix()
    la = a.train_step(pairs())
    lb = build_pix2pix().train_step(pairs())  # same seed, same pairs: the same step
    assert la == lb and set(la) == {"loss/critic", "loss/generator", "loss/l1"}
    assert all(math.isfinite(v) for v in la.values())
    out = a.translate(pairs()()[0])
    assert out.shape == (8, 1, 28, 28) and out.abs().max() <= 1
    # The 16×16-patch D scores a 12×12 grid of patches of a 28×28 pair.
    assert a.critic(out, pairs()()[0]).shape == (8, 1, 12, 12)


def test_pix2pix_learning_rates_decay_linearly_over_the_second_half_of_the_budget():
    model = build_pix2pix()
    model.set_budget(10)
    lrs = []
    for _ in range(10):
        model.train_step(pairs(n=2))
        lrs.append(model.opt_G.param_groups[0]["lr"])
    assert lrs[:4] == [2e-4] * 4  # steps 1-4 done: still constant (decay starts after step 5)
    assert lrs[4:] == pytest.approx([2e-4 * (1 - k / 6) for k in range(6)])
    assert model.opt_D.param_groups[0]["lr"] == lrs[-1]
    assert {"sched_G", "sched_D"} <= set(model.state_dict())


@pytest.mark.parametrize("gan_weight", [0.0, 1.0])
def test_l1_alone_ignores_the_discriminator(gan_weight):
    # Two models alike but for D's weights, stepped on the same pairs with the same dropout draws:
    # G ends equal exactly when its loss has no adversarial term ("L1 alone" of Table 1).
    a, b = build_pix2pix(gan_weight=gan_weight), build_pix2pix(gan_weight=gan_weight)
    with torch.no_grad():
        for p in b.D.parameters():
            p.mul_(-3.0)
    for model in (a, b):
        seed_everything(1, CPU)
        model.train_step(pairs())
    same = all(torch.equal(x, y) for x, y in zip(a.G.parameters(), b.G.parameters(), strict=True))
    assert same == (gan_weight == 0.0)


@pytest.mark.slow
def test_paired_translation_runs_end_to_end(write_suite, bench, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    rc, err = bench("run", f"suite={write_suite(PAIRED_SUITE)}", "tracking.enabled=false",
                    f"out={tmp_path / 'run'}")  # fmt: skip
    assert rc == 0, err
    rows = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(rows["step"]) == [0, 4, 8] and (rows["status"] == "ok").all()
    final = rows.iloc[-1]
    assert 0 <= final["label_preservation/lenet-mnist5k"] <= 1
    assert 0 < final["l1"] < 1 and math.isfinite(final["psnr"]) and -1 <= final["ssim"] <= 1
    assert final["fid/lenet-mnist5k"] > 0 and final["n_fake/lenet-mnist5k"] == 64
    assert {"critic_loss", "loss/l1"} <= set(rows.columns)
    cell = tmp_path / "run" / "cells" / "pix2pix__edges2digits__s0"
    with np.load(cell / "samples.npz") as s:
        assert s["source"].shape == s["fake"].shape == s["target"].shape == (64, 1, 28, 28)
    assert len(list((cell / "grids").glob("*.png"))) == 3


def test_a_killed_translation_cell_resumes_to_the_same_weights(tmp_path, cache):
    suite = tmp_path / "paired.toml"
    suite.write_text(textwrap.dedent(PAIRED_SUITE).replace('metrics = ["label_preservation", '
                     '"l1", "psnr", "ssim", "fid"]', 'metrics = ["l1", "psnr"]')
                     .replace("gen_steps = 8", "gen_steps = 12"))  # fmt: skip
    args = ("run", f"suite={suite}", "tracking.enabled=false")
    whole = run(tmp_path, *args, f"out={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr
    # Kill the worker inside its 7th training step: after the checkpoint at step 4's evaluation.
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "sitecustomize.py").write_text(SITECUSTOMIZE.format(
        module="variants.pix2pix", owner="Pix2Pix", name="train_step", n=7, how="kill"))  # fmt: skip
    killed = run(tmp_path, *args, f"out={tmp_path / 'killed'}", faults=faults)
    assert killed.returncode != 0
    resumed = run(tmp_path, "resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr
    a, b = (
        pd.read_csv(tmp_path / d / "results.csv").drop(columns=TIMING) for d in ("whole", "killed")
    )
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    cell = "cells/pix2pix__edges2digits__s0/checkpoint.pt"
    wa, wb = (
        torch.load(tmp_path / d / cell, weights_only=True)["variant"] for d in ("whole", "killed")
    )
    assert sorted(wa) == ["D", "G", "opt_D", "opt_G", "sched_D", "sched_G"]
    for net in ("D", "G"):
        assert all(torch.equal(wa[net][k], wb[net][k]) for k in wa[net]), net
