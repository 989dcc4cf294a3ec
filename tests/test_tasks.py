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


UNPAIRED_SUITE = """
description = "tiny unpaired translation"
task = "unpaired_translation"
seeds = [0]
datasets = ["mnist2textured"]
metrics = ["label_preservation", "fid", "cycle_l1"]

[budget]
gen_steps = 8

[train]
batch_size = 4
workers = 1

[eval]
every = 4
num_samples = 40
reference_split = "held_out"
kid_subsets = 2

[variant_defaults]
ngf = 4
ndf = 4
n_blocks = 1
d_layers = 1
pool_size = 6

[variants.cyclegan]
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
        ('task = "paired_translation"', 'task = "image_translation"'),
    ), "unknown task 'image_translation'; known tasks: anomaly_detection, generation, music, "
       "paired_translation, super_resolution, unpaired_translation"),
    "a paired metric in a generation suite": ((
        ('task = "paired_translation"\n', ""),
        ('datasets = ["edges2digits"]', 'datasets = ["mnist5k"]'),
        ('metrics = ["label_preservation", "l1", "psnr", "ssim", "fid"]', 'metrics = ["fid", "psnr"]'),
        ("[variants.pix2pix]", "[variants.dcgan]"),
        ("[variant_defaults]\nngf = 4\nndf = 4\nd_layers = 1\n", ""),
    ), "'psnr' applies to task paired_translation, super_resolution, not to 'generation'"),
    "unpaired data in a translation suite": ((
        ('datasets = ["edges2digits"]', 'datasets = ["mnist5k"]'),
    ), "'mnist5k' holds samples data, but task 'paired_translation' needs paired data"),
    "a generation metric in a translation suite": ((
        ('metrics = ["label_preservation", "l1", "psnr", "ssim", "fid"]',
         'metrics = ["label_accuracy"]'),
    ), "'label_accuracy' applies to task generation, not to 'paired_translation'"),
    "a paired metric on unpaired data": ((
        ('task = "paired_translation"', 'task = "unpaired_translation"'),
        ('datasets = ["edges2digits"]', 'datasets = ["mnist2textured"]'),
        ("[variants.pix2pix]", "[variants.cyclegan]"),
        ("d_layers = 1\n", "d_layers = 1\nn_blocks = 1\n"),
    ), "'l1' applies to task paired_translation, super_resolution, not to 'unpaired_translation'"),
    "an unpaired variant in a paired suite": ((
        ("[variants.pix2pix]", "[variants.cyclegan]"),
    ), "variant 'cyclegan' does not fit task 'paired_translation'"),
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
    assert set(TASKS.names()) == {
        "anomaly_detection",
        "generation",
        "music",
        "paired_translation",
        "unpaired_translation",
        "super_resolution",
    }
    assert "translates" in VARIANTS.get("pix2pix").capabilities
    assert "translates_unpaired" in VARIANTS.get("cyclegan").capabilities


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
    assert set(torch.load(tmp_path / "cell" / "networks.pt", weights_only=True)) == {"G"}


class LateLoss(NoCritic):
    """Reports a second loss only from its 5th step on (as SRGAN's critic loss after pretraining)."""

    def train_step(self, next_real):  # noqa: ANN001, ANN201
        self.calls = getattr(self, "calls", 0) + 1
        losses = super().train_step(next_real)
        return {**losses, "loss/late": float(self.calls)} if self.calls > 4 else losses


def test_a_loss_reported_in_some_steps_is_averaged_over_those_steps(tmp_path):
    VARIANTS._items.setdefault("late_loss_toy", LateLoss)  # test-only; run in this process
    try:
        rows = []
        job = CellJob(
            cell_id="toy", label="toy", variant="late_loss_toy", config={}, dataset="8gaussians",
            seed=0, gen_steps=6, batch_size=16,
            eval=load_suite(str(REPO / "suites" / "wgan_vs_gp.toml")).spec.eval.model_dump()
            | {"every": 6, "num_samples": 100, "at_start": False},
            metrics=["energy_distance"], device="cpu", cell_dir=str(tmp_path / "cell"),
        )  # fmt: skip
        assert run_cell(job, lambda kind, p: rows.extend(p) if kind == "rows" else 0) == "ok"
    finally:
        VARIANTS._items.pop("late_loss_toy")
    (row,) = rows
    assert row["loss/late"] == (5 + 6) / 2  # steps 5 and 6 reported it; not (5 + 6) / 6


def test_a_cold_feature_cache_gives_the_same_numbers_as_a_warm_one(tmp_path):
    # torch's DataLoader draws its base seed from the global generator; extracting the real
    # features (only when they are not cached) must not shift the training noise after it.
    suite = load_suite(str(REPO / "suites" / "ci.toml"), overrides={"eval.num_samples": "64",
                       "eval.num_real": "128"})  # fmt: skip
    eval_cfg = suite.spec.eval.model_dump() | {"every": 3, "at_start": False}

    def cell(name: str) -> list[dict]:
        rows = []
        job = CellJob(
            cell_id=name, label="dcgan", variant="dcgan", config={"ngf": 4, "ndf": 4},
            dataset="digits", seed=0, gen_steps=3, batch_size=8, eval=eval_cfg,
            metrics=["fid"], device="cpu", cell_dir=str(tmp_path / name),
            cache_dir=str(tmp_path / "cache"),
        )  # fmt: skip
        assert run_cell(job, lambda kind, p: rows.extend(p) if kind == "rows" else 0) == "ok"
        return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]

    cold = pd.DataFrame(cell("cold"))  # trains the classifier and extracts the real features
    assert (tmp_path / "cache" / "features").is_dir()
    pd.testing.assert_frame_equal(pd.DataFrame(cell("warm")), cold, check_exact=True)


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


def test_mnist2textured_draws_its_two_domains_from_different_digits():
    data = DATASETS.get("mnist2textured")()
    digits = DATASETS.get("mnist5k")()
    a, b = data.domains["A"], data.domains["B"]
    for split in ("train", "held_out"):
        images, labels = digits.split(split)
        assert torch.equal(a.split(split)[0], images[0::2])  # A: the even rows, as they are
        assert torch.equal(b.split(split)[1], labels[1::2])  # B: built from the odd rows
        assert b.split(split)[0].shape == images[1::2].shape
        # Ink where the digit is, lightened texture ([128, 255]) where it is not.
        ink = images[1::2] > 200
        assert (b.split(split)[0][ink] < 60).float().mean() > 0.9
        assert (b.split(split)[0][images[1::2] == 0] >= 128).all()
    # Training and held-out digits sit on different patches: their backgrounds never coincide.
    bg = [b.split(s)[0][images_blank] for s, images_blank in
          (("train", digits.split("train")[0][1::2] == 0),
           ("held_out", digits.split("held_out")[0][1::2] == 0))]  # fmt: skip
    assert bg[0].float().mean() != bg[1].float().mean()
    assert data.fingerprint() == DATASETS.get("mnist2textured")().fingerprint()
    assert data.kind == "unpaired" and data.domain_classifiers == {
        "A": "mnist5k",
        "B": "textured_digits",
    }


def test_unpaired_columns_name_their_direction_and_tuning_resolves_them():
    from bench.config import objective_columns

    spec = load_suite(str(REPO / "suites" / "translation_unpaired.toml")).spec
    spec = spec.model_copy(update={"tuning": spec.tuning or _tuning("fid")})
    columns = objective_columns(spec)
    assert columns[:3] == ["label_preservation/lenet-textured_digits/A2B",
                           "fid/lenet-textured_digits/A2B", "cycle_l1/A2B2A"]  # fmt: skip
    assert "fid/lenet-mnist5k/B2A" in columns and "cycle_l1/B2A2B" in columns
    from bench.metrics import column_direction

    assert column_direction("cycle_l1/A2B2A") is False
    assert column_direction("label_preservation/lenet-mnist5k/B2A") is True


def _tuning(objective: str):
    from bench.config import Tuning

    return Tuning(objective=objective)


# --- CycleGAN ------------------------------------------------------------------------------------


def build_cyclegan(seed=0, shape=(1, 28, 28), source=(1, 28, 28), **overrides):
    seed_everything(seed, CPU)
    cls = VARIANTS.get("cyclegan")
    cfg = cls.Config.model_validate({"ngf": 4, "ndf": 4, "n_blocks": 1, "d_layers": 1,
                                     "pool_size": 3, **overrides})  # fmt: skip
    return cls(cfg, DataSpec(shape, 10, source), CPU)


def test_cyclegan_steps_translate_both_ways_and_repeat_exactly():
    model = build_cyclegan()
    losses = model.train_step(pairs(n=2))
    again = build_cyclegan().train_step(pairs(n=2))
    assert losses == again and all(math.isfinite(v) for v in losses.values())
    assert set(losses) == {"loss/generator", "loss/cycle", "loss/identity", "loss/critic_A",
                           "loss/critic_B"}  # fmt: skip
    x = pairs(n=2)()[0]
    assert model.translate(x, "A2B").shape == model.translate(x, "B2A").shape == x.shape
    # Grey A and RGB B: no identity loss (it needs equal channels), each G maps its own channels.
    rgb = build_cyclegan(shape=(3, 28, 28))
    g = torch.Generator().manual_seed(0)
    out = rgb.train_step(lambda: (torch.rand(2, 1, 28, 28, generator=g) * 2 - 1,
                                  torch.rand(2, 3, 28, 28, generator=g) * 2 - 1))  # fmt: skip
    assert "loss/identity" not in out
    assert rgb.translate(x, "A2B").shape == (2, 3, 28, 28)


def test_the_image_history_fills_then_swaps_half_of_what_it_is_shown():
    from variants.cyclegan import ImagePool

    torch.manual_seed(0)
    pool = ImagePool(4, (1, 2, 2))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 4  # filling: as given
    new = (100 + torch.arange(200.0)).view(200, 1, 1, 1).expand(200, 1, 2, 2)
    out = pool.query(new)
    swapped = (out[:, 0, 0, 0] != new[:, 0, 0, 0]).float().mean()
    assert 0.35 < swapped < 0.65  # about half come from the history instead
    assert (pool.images[:, 0, 0, 0] >= 100).all()  # the old images were all replaced by new ones
    assert set(out[:, 0, 0, 0].tolist()) <= set(first[:, 0, 0, 0].tolist()) | set(
        new[:, 0, 0, 0].tolist()
    )  # nothing made up


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


@pytest.mark.slow
def test_unpaired_translation_runs_end_to_end(write_suite, bench, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    rc, err = bench("run", f"suite={write_suite(UNPAIRED_SUITE)}", "tracking.enabled=false",
                    f"out={tmp_path / 'run'}")  # fmt: skip
    assert rc == 0, err
    # Each domain's classifier and features are prepared once, before the cells start.
    for domain in ("A", "B"):
        assert f"preparing image metrics for mnist2textured domain {domain}" in err
    rows = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(rows["step"]) == [0, 4, 8] and (rows["status"] == "ok").all()
    final = rows.iloc[-1]
    for direction, backbone in (("A2B", "lenet-textured_digits"), ("B2A", "lenet-mnist5k")):
        assert 0 <= final[f"label_preservation/{backbone}/{direction}"] <= 1
        assert final[f"fid/{backbone}/{direction}"] > 0
        assert final[f"n_fake/{backbone}/{direction}"] == 40
    assert 0 < final["cycle_l1/A2B2A"] < 1 and 0 < final["cycle_l1/B2A2B"] < 1
    # Two critics: each one's columns carry its name; the plain names stay for single critics.
    assert not {"critic_loss", "clip_saturation"} & set(rows.columns)
    for critic in ("D_A", "D_B"):
        assert (rows[f"critic_loss/{critic}"] > 0).all()
        assert rows[f"clip_saturation/{critic}"].between(0, 1).all()
    cell = tmp_path / "run" / "cells" / "cyclegan__mnist2textured__s0"
    with np.load(cell / "samples.npz") as s:
        assert s["fake_A2B"].shape == s["source_A"].shape == (40, 1, 28, 28)
    assert len(list((cell / "grids").glob("*.png"))) == 3
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "cycle_l1/A2B2A" in summary and "fid/lenet-mnist5k/B2A" in summary


SUPERRES_SUITE = """
description = "tiny super-resolution"
task = "super_resolution"
seeds = [0]
datasets = ["mnist5k_x4"]
metrics = ["psnr_y", "ssim_y", "fid"]

[budget]
gen_steps = 8

[train]
batch_size = 8
workers = 1

[eval]
every = 4
num_samples = 64
reference_split = "held_out"

[variants.srgan]
n_blocks = 1
width = 8
ndf = 4
"""


RESUME_CASES = {
    "pix2pix": (PAIRED_SUITE, 'metrics = ["label_preservation", "l1", "psnr", "ssim", "fid"]',
                'metrics = ["l1", "psnr"]', "variants.pix2pix", "Pix2Pix",
                "pix2pix__edges2digits__s0"),
    "cyclegan": (UNPAIRED_SUITE, 'metrics = ["label_preservation", "fid", "cycle_l1"]',
                 'metrics = ["cycle_l1"]', "variants.cyclegan", "CycleGAN",
                 "cyclegan__mnist2textured__s0"),
    **{name: (UNPAIRED_SUITE.replace("d_layers = 1\npool_size = 6\n", "")
              .replace("[variants.cyclegan]", f"[variants.{name}]"),
              'metrics = ["label_preservation", "fid", "cycle_l1"]', 'metrics = ["cycle_l1"]',
              f"variants.{name}", owner, f"{name}__mnist2textured__s0")
       for name, owner in (("ugatit", "UGATIT"), ("nicegan", "NiceGAN"))},
    # Killed at step 7 of 12, resumed from step 4: across the switch from MSE pretraining to
    # adversarial training at step 6, with the domain content network handed over again.
    "srgan": (SUPERRES_SUITE, 'metrics = ["psnr_y", "ssim_y", "fid"]', 'metrics = ["psnr_y"]',
              "variants.srgan", "SRGAN", "srgan__mnist5k_x4__s0"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RESUME_CASES))
def test_a_killed_translation_cell_resumes_to_the_same_weights(name, tmp_path):
    text, metrics, fewer, module, owner, cell = RESUME_CASES[name]
    suite = tmp_path / "translation.toml"
    suite.write_text(textwrap.dedent(text).replace(metrics, fewer)
                     .replace("gen_steps = 8", "gen_steps = 12"))  # fmt: skip
    args = ("run", f"suite={suite}", "tracking.enabled=false")
    whole = run(tmp_path, *args, f"out={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr
    # Kill the worker inside its 7th training step: after the checkpoint at step 4's evaluation.
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "sitecustomize.py").write_text(SITECUSTOMIZE.format(
        module=module, owner=owner, name="train_step", n=7, how="kill"))  # fmt: skip
    killed = run(tmp_path, *args, f"out={tmp_path / 'killed'}", faults=faults)
    assert killed.returncode != 0
    resumed = run(tmp_path, "resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr
    a, b = (
        pd.read_csv(tmp_path / d / "results.csv").drop(columns=TIMING, errors="ignore")
        for d in ("whole", "killed")
    )
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # Every network (CycleGAN's image histories included), optimiser and scheduler, bit for bit.
    wa, wb = (torch.load(tmp_path / d / "cells" / cell / "checkpoint.pt", weights_only=True)
              ["variant"] for d in ("whole", "killed"))  # fmt: skip
    assert sorted(wa) == sorted(wb) and {"sched_G", "sched_D", "opt_G", "opt_D"} <= set(wa)
    nets = torch.load(tmp_path / "whole" / "cells" / cell / "networks.pt", weights_only=True)
    assert set(nets) == set(wa) - {"sched_G", "sched_D", "opt_G", "opt_D"}
    for net in nets:
        assert all(torch.equal(wa[net][k], wb[net][k]) for k in wa[net]), net
