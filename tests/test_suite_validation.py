"""Malformed suites and overrides: one message naming the file and key, exit code 2, no run folder."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_SUITE


def replace(old: str, new: str) -> str:
    assert old in TINY_SUITE
    return TINY_SUITE.replace(old, new)


BAD_SUITES = {
    "a tested metric the suite lacks": (
        TINY_SUITE + '\n[report]\ntested = ["fid"]\n',
        "key 'report.tested': fid not among the suite's metrics",
    ),
    "a cost reference that is no entry": (
        TINY_SUITE + '\n[report]\ncost_reference = "cyclegan"\n',
        "key 'report.cost_reference'",
    ),
    "an ablation step that is no entry": (
        TINY_SUITE + '\n[report]\nablation = ["wgan", "B_bilinear"]\n',
        "key 'report.ablation[1]': no variant entry 'B_bilinear'",
    ),
    "published values that do not match the ablation": (
        TINY_SUITE + '\n[report]\nablation = ["wgan"]\nablation_reference = [8.04, 5.25]\n',
        "key 'report.ablation_reference': 2 values for 1 ablation entries",
    ),
    "a path length on data that are not images": (
        replace('metrics = ["modes_captured"', 'metrics = ["ppl_z", "modes_captured"'),
        "key 'metrics': ppl_z measure images",
    ),
    "unknown top-level key": ('evaluation = "x"\n' + TINY_SUITE, "key 'evaluation': unknown key"),
    "unknown nested key": (
        replace("every = 3", "evry = 3"),
        "key 'eval.evry': unknown key; allowed keys here: every",
    ),
    "wrong type": (
        replace("gen_steps = 6", 'gen_steps = "6"'),
        "key 'budget.gen_steps': input should be a valid integer",
    ),
    "negative steps": (
        replace("gen_steps = 6", "gen_steps = -5"),
        "key 'budget.gen_steps': input should be greater than 0 (got -5)",
    ),
    "empty seed list": (
        replace("seeds = [0, 1]", "seeds = []"),
        "key 'seeds': list should have at least 1 item",
    ),
    "duplicate seeds": (
        replace("seeds = [0, 1]", "seeds = [1, 1]"),
        "key 'seeds': each seed may appear only once",
    ),
    "missing budget": (
        replace("[budget]\ngen_steps = 6", ""),
        "key 'budget': required key is missing",
    ),
    "unknown variant": (
        TINY_SUITE + "\n[variants.wgna]\n",
        "key 'variants.wgna.variant': unknown variant 'wgna'; known variants: anogan, bicubic, cgan, conv_autoencoder, cyclegan, dcgan, f_anogan, gan, lsgan, musegan, nicegan, pix2pix, pixelcnn, pixelrnn, srgan, srresnet, stylegan, ugatit, vae, wgan, wgan_gp",
    ),
    "unknown variant field": (
        replace("gp_weight = 0.1", "gp_wieght = 0.1"),
        "key 'variants.wgan_gp.gp_wieght': unknown key; allowed keys here: arch, z_dim, width",
    ),
    "bad variant value": (
        replace("gp_weight = 0.1", "gp_weight = -1.0"),
        "key 'variants.wgan_gp.gp_weight': input should be greater than or equal to 0",
    ),
    "default not a field of every variant": (
        replace("width = 16", "width = 16\nclip_value = 0.1"),
        "key 'variant_defaults.clip_value': not a field of variant 'wgan_gp'",
    ),
    "unknown dataset": (
        replace('datasets = ["8gaussians"]', 'datasets = ["9gaussians"]'),
        "key 'datasets[0]': unknown dataset '9gaussians'; known datasets:",
    ),
    "unknown metric": (
        replace('"energy_distance"]', '"fjd"]'),
        "key 'metrics[3]': unknown metric 'fjd'; known metrics:",
    ),
    "image metric on points": (
        replace('"energy_distance"]', '"fid"]'),
        "key 'metrics': fid measure images, but 8gaussians are not image datasets",
    ),
    "invalid toml": (TINY_SUITE + "\n[budget\n", "not valid TOML"),
    "bad profile": (
        TINY_SUITE + "\n[profiles.fast]\nbudget.gen_steps = 0\n",
        "(profile 'fast'): key 'budget.gen_steps': input should be greater than 0",
    ),
    "profile named default": (
        TINY_SUITE + "\n[profiles.default]\nseeds = [3]\n",
        "key 'profiles.default': reserved",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_malformed_suite_is_refused_cleanly(case, write_suite, bench, tmp_path):
    text, expected = BAD_SUITES[case]
    path = write_suite(text)
    rc, err = bench("run", f"suite={path}", f"out={tmp_path / 'run'}")
    assert rc == 2
    assert "tiny.toml" in err and expected in err
    assert err.startswith("bench: error: ") and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "results").exists()


BAD_OVERRIDES = {
    "negative steps": (
        ["budget.gen_steps=-1"],
        "key 'budget.gen_steps': input should be greater than 0",
    ),
    "unknown key": (["eval.evry=2"], "key 'eval.evry': unknown key"),
    "non-integer seeds": (["seeds=a,b"], "key 'seeds[0]': input should be a valid integer"),
    "unknown device": (
        ["device=tpu"],
        "key 'train.device': input should be 'auto', 'cpu' or 'cuda'",
    ),
    "unknown variant field": (["variants.wgan.clip=0.1"], "key 'variants.wgan.clip': unknown key"),
    "unknown profile": (["profile=fast"], "unknown profile 'fast'; known profiles: default"),
    "not key=value": (["gen_steps"], "argument 'gen_steps' is not of the form key=value"),
    "value into a value": (["budget.gen_steps.x=1"], "'budget.gen_steps' is a value, not a table"),
}


@pytest.mark.parametrize("case", sorted(BAD_OVERRIDES))
def test_bad_override_is_refused_cleanly(case, write_suite, bench, tmp_path):
    args, expected = BAD_OVERRIDES[case]
    path = write_suite()
    rc, err = bench("run", f"suite={path}", f"out={tmp_path / 'run'}", *args)
    assert rc == 2
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "results").exists()


def test_unknown_suite_name_lists_known_suites(write_suite, bench, tmp_path):
    write_suite(name="tiny")
    rc, err = bench("run", "suite=nope")
    assert rc == 2
    assert "unknown suite 'nope'; known suites:" in err and "tiny" in err and "wgan_vs_gp" in err
    assert not (tmp_path / "results").exists()


def test_missing_suite_argument(bench):
    rc, err = bench("run", "profile=smoke")
    assert rc == 2 and "missing suite=NAME" in err


def test_existing_output_folder_is_not_overwritten(write_suite, bench, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "results.csv").write_text("precious\n")
    rc, err = bench("run", f"suite={write_suite()}", f"out={out}")
    assert rc == 2 and "exists and is not an empty folder" in err
    assert (out / "results.csv").read_text() == "precious\n"


def test_the_installed_command_reports_without_traceback(write_suite, tmp_path):
    path = write_suite(replace("gen_steps = 6", "gen_steps = -6"))
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", f"suite={path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "key 'budget.gen_steps'" in proc.stderr
    assert not Path(tmp_path / "results").exists()
