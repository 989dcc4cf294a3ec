"""StyleGAN (variants/stylegan.py): the mapping's learning rate, style mixing, the Table 1 configs,
truncation, refusals and determinism, on CPU at tiny widths."""

import math
from pathlib import Path

import pytest
import torch

from bench.datasets import DataSpec
from bench.errors import UsageError
from bench.seeding import seed_everything
from variants.stylegan import EqualConv2d, EqualLinear, StyleGAN, StyleGANConfig

REPO = Path(__file__).resolve().parents[1]

CPU = torch.device("cpu")
MNIST, DIGITS = DataSpec((1, 28, 28)), DataSpec((1, 8, 8))
TINY = {"z_dim": 16, "w_dim": 16, "channels": 8, "d_channels": 8}
# Table 1 of the paper, as in the module docstring; F is the defaults.
A = {"styles": False, "const_input": False, "noise": False, "mixing_prob": 0.0}
A |= {"mapping_depth": 0, "resample": "nearest"}
B = A | {"resample": "bilinear"}
C = B | {"styles": True, "mapping_depth": 8}
D = C | {"const_input": True}
E = D | {"noise": True}
F = E | {"mixing_prob": 0.9}
TABLE1 = {"A": A, "B": B, "C": C, "D": D, "E": E, "F": F}


def build(data: DataSpec = MNIST, seed: int = 0, **overrides) -> StyleGAN:
    seed_everything(seed, CPU)
    return StyleGAN(StyleGANConfig.model_validate(TINY | overrides), data, CPU)


def batches(data: DataSpec = MNIST, seed: int = 0, batch_size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return lambda: torch.rand((batch_size, *data.shape), generator=g) * 2 - 1


def he_constant(layer: EqualLinear | EqualConv2d) -> float:
    return math.sqrt(2) / math.sqrt(layer.weight[0].numel())


@pytest.mark.parametrize("lr_mul", [0.01, 1.0])
def test_mapping_learns_at_lr_mul_times_the_rate_of_synthesis(lr_mul):
    variant = build(mapping_lr_mul=lr_mul)
    mapping = [m for m in variant.G.mapping if isinstance(m, EqualLinear)]
    synthesis = list(variant.G.convs)

    def effective(layers):  # the weight the layer computes with, in units of its He constant
        return [(m.weight * m.scale / he_constant(m)).detach().clone() for m in layers]

    # Equalised lr: every effective weight starts N(0, He²), whatever its layer's multiplier.
    assert torch.cat([w.flatten() for w in effective(mapping)]).std() == pytest.approx(1, rel=0.15)
    before_mapping, before_synthesis = effective(mapping), effective(synthesis)
    variant.train_step(batches())  # one opt_G.step()

    def median_change(before, layers):
        deltas = [(b - a).abs().flatten() for a, b in zip(before, effective(layers), strict=True)]
        return torch.cat(deltas).median().item()

    synthesis_change = median_change(before_synthesis, synthesis)
    assert synthesis_change == pytest.approx(variant.cfg.lr, rel=0.1)  # Adam's first step: ±lr
    ratio = median_change(before_mapping, mapping) / synthesis_change
    assert ratio == pytest.approx(lr_mul, rel=0.1)


def test_mix_puts_w1_before_the_crossover_and_w2_from_it_on():
    variant = build()
    w1, w2 = torch.randn(3, 16), torch.randn(3, 16)
    ws = variant.mix(w1, w2, 2)
    assert ws.shape == (3, variant.num_ws, 16) and variant.num_ws == 6  # 7 → 14 → 28
    assert all(torch.equal(ws[:, i], w1) for i in range(2))
    assert all(torch.equal(ws[:, i], w2) for i in range(2, variant.num_ws))


def record_crossovers(variant: StyleGAN, monkeypatch) -> list[int]:
    crossovers: list[int] = []
    mix = variant.mix

    def recording_mix(w1, w2, crossover):
        crossovers.append(crossover)
        return mix(w1, w2, crossover)

    monkeypatch.setattr(variant, "mix", recording_mix)
    return crossovers


def test_training_mixes_two_latents_at_a_random_crossover(monkeypatch):
    variant = build(DIGITS, mixing_prob=1.0)
    crossovers = record_crossovers(variant, monkeypatch)
    variant.train_step(batches(DIGITS))
    assert len(crossovers) == 2  # in the generator pass of the D step and of the G step
    for _ in range(100):
        variant.training_ws(4)
    assert set(crossovers) == set(range(1, variant.num_ws))  # never 0 or num_ws: always a mix

    unmixed = build(DIGITS, mixing_prob=0.0)
    crossovers = record_crossovers(unmixed, monkeypatch)
    for _ in range(3):
        unmixed.train_step(batches(DIGITS))
        unmixed.training_ws(4)
    assert crossovers == []


@pytest.mark.parametrize("data", [MNIST, DIGITS], ids=["28x28", "8x8"])
@pytest.mark.parametrize("config", list(TABLE1))
def test_table1_configs_train_and_generate(config, data):
    variant = build(data, **TABLE1[config])
    losses = variant.train_step(batches(data))
    assert {"loss/critic", "loss/generator", "loss/r1_penalty"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values())
    x = variant.generate(torch.randn(5, variant.z_dim))
    assert x.shape == (5, *data.shape) and x.abs().max() <= 1

    names = dict(variant.G.named_parameters())
    affines = [m for m in variant.G.modules() if getattr(m, "affine", None) is not None]
    assert len(affines) == (variant.num_ws if config in "CDEF" else 0)
    assert ("const" in names) == (config in "DEF")
    assert any("noise_strength" in n for n in names) == (config in "EF")
    assert variant.has_mapping == (config in "CDEF")


def test_const_noise_repeats_an_image_and_random_noise_does_not():
    variant = build(**E)
    with torch.no_grad():
        for layer in variant.G.epilogues:  # noise strengths start at 0, which would hide the noise
            layer.noise_strength.fill_(0.5)
        ws = variant.map(torch.randn(2, 16))[:, None].expand(-1, variant.num_ws, -1)
        assert torch.equal(variant.synthesise(ws, "const"), variant.synthesise(ws, "const"))
        assert not torch.equal(variant.synthesise(ws, "random"), variant.synthesise(ws, "random"))


def test_truncation_interpolates_between_the_average_w_and_w():
    variant = build()
    variant.G.w_avg.copy_(torch.randn(16))
    w = torch.randn(4, 16)
    assert torch.allclose(variant.truncate(w, 0.0), variant.G.w_avg.expand(4, -1))
    assert torch.allclose(variant.truncate(w, 1.0), w)
    avg = variant.G.w_avg.clone()
    variant.train_step(batches())  # the G step moves w_avg by (1 - β) towards its batch's mean w
    assert not torch.equal(variant.G.w_avg, avg)


@pytest.mark.parametrize(
    "shape,problem",
    [
        ((1, 28, 32), "square"),
        ((1, 6, 6), "cannot reach side 6"),
        ((1, 4, 4), "cannot reach side 4"),
        ((2,), "images"),
    ],
)
def test_images_it_cannot_build_are_refused(shape, problem):
    assert problem in StyleGAN.data_problem(DataSpec(shape))
    with pytest.raises(UsageError, match=problem):
        build(DataSpec(shape))


def test_contradictory_configs_are_refused_where_the_config_is_read(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="no styles to mix"):
        StyleGANConfig.model_validate(A | {"mixing_prob": 0.9})
    with pytest.raises(ValidationError, match="mapping_depth"):
        StyleGANConfig.model_validate(A | {"mapping_depth": 8})
    StyleGANConfig.model_validate(A)  # the ablation's config A itself is consistent
    # In a suite file: one message naming the entry, before anything runs.
    from bench.config import load_suite

    suite = (REPO / "suites" / "ci_stylegan.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(suite.replace('resample = "nearest"', 'resample = "nearest"\nmixing_prob = 0.5', 1)
                   .replace("mixing_prob = 0.0\n", "", 1))  # fmt: skip
    with pytest.raises(UsageError, match=r"variants\.A_traditional.*no styles to mix"):
        load_suite(str(bad))


def test_same_seed_and_batches_give_the_same_weights():
    def weights_after_two_steps():
        variant = build(seed=5)
        next_real = batches(seed=5)
        for _ in range(2):
            variant.train_step(next_real)
        state = variant.state_dict()
        return [*state["G"].values(), *state["D"].values()]

    for a, b in zip(weights_after_two_steps(), weights_after_two_steps(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_the_ablation_smoke_run_gives_path_lengths_grids_and_the_step_table(
    bench, cache, tmp_path, monkeypatch
):
    import pandas as pd

    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    entries = "A_traditional,C_mapping_styles,F_mixing,dcgan"
    args = ("run", "suite=stylegan_ablation", "profile=smoke", "tracking.enabled=false",
            f"entries={entries}", "eval.ppl_samples=40")  # fmt: skip
    rc, err = bench(*args, f"out={tmp_path / 'run'}")
    assert rc == 0, err
    run = tmp_path / "run"
    rows = pd.read_csv(run / "results.csv")
    final = rows[(rows["step"] == 10) & (rows["dataset"] == "mnist5k")].set_index("variant")
    # Z paths for everyone; W paths only where there is a mapping network, else the reason.
    assert (final["ppl_z/lenet-mnist5k"] > 0).all()
    assert final.loc[["C_mapping_styles", "F_mixing"], "ppl_w/lenet-mnist5k"].gt(0).all()
    assert final.loc[["A_traditional", "dcgan"], "ppl_w/lenet-mnist5k"].isna().all()
    assert "has no mapping network" in final.loc["A_traditional", "note"]
    # Mixing grid for a model with styles, truncation grid for one with a mapping network.
    grids = {p.parent.parent.name.split("__")[0]: p.name for p in run.glob("cells/*/grids/*")
             if not p.name.startswith("step_")}  # fmt: skip
    assert set(grids) == {"C_mapping_styles", "F_mixing"}
    assert (
        "Only `A_traditional`, `F_mixing` train on stacked_mnist"
        in (run / "summary.md").read_text()
    )
    assert (run / "cells/F_mixing__mnist5k__s0/grids/style_mixing.png").is_file()
    assert (run / "cells/F_mixing__mnist5k__s0/grids/truncation.png").is_file()
    summary = (run / "summary.md").read_text()
    assert "## Ablation, step by step" in summary
    assert "| `C_mapping_styles` |" in summary and "Path lengths (ppl_z, ppl_w)" in summary
    # Same suite, same seed: the same numbers, path lengths included.
    rc, err = bench(*args, f"out={tmp_path / 'again'}")
    assert rc == 0, err
    again = pd.read_csv(tmp_path / "again" / "results.csv")
    columns = ["fid/lenet-mnist5k", "ppl_z/lenet-mnist5k", "ppl_w/lenet-mnist5k"]
    pd.testing.assert_frame_equal(rows[columns], again[columns])


def test_when_evaluations_happen_does_not_change_training(bench, cache, tmp_path, monkeypatch):
    # StyleGAN draws noise images while it samples; evaluating at other steps must leave the
    # training that follows unchanged (the final weights and the final evaluation alike).
    import pandas as pd

    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    common = ("run", "suite=ci_stylegan", "profile=smoke", "entries=F_mixing", "seeds=0",
              "budget.gen_steps=8", "eval.num_samples=100", "eval.ppl_samples=20")  # fmt: skip
    finals = []
    for every in (4, 8):
        rc, err = bench(*common, f"eval.every={every}", f"out={tmp_path / str(every)}")
        assert rc == 0, err
        rows = pd.read_csv(tmp_path / str(every) / "results.csv")
        finals.append(rows[rows["step"] == 8].iloc[0])
        weights = torch.load(next((tmp_path / str(every)).glob("cells/*/networks.pt")))
        finals[-1]["weights"] = weights
    for column in ("fid/lenet-mnist5k", "ppl_z/lenet-mnist5k", "ppl_w/lenet-mnist5k"):
        assert finals[0][column] == finals[1][column]
    for net, state in finals[0]["weights"].items():
        for key, value in state.items():
            assert torch.equal(value, finals[1]["weights"][net][key]), (net, key)
