"""The quality gate: baselines from seed-to-seed spread, bands, claims, and a degraded variant caught."""

import ast
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.config import load_suite
from bench.registry import VARIANTS, load_all
from bench.regress import baseline_path, config_changes

from .conftest import TINY_SUITE

REPO = Path(__file__).resolve().parents[1]

# The tests' tiny suite (two toy variants, a handful of steps) over five seeds, evaluated once at
# the end, with a claim: seconds per run.
GATED_SUITE = (
    TINY_SUITE.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4]")
    .replace("every = 3", "every = 6\nat_start = false")
    .replace("[variant_defaults]", "[tracking]\nenabled = false\n\n[variant_defaults]")
    + """
[[claims]]
metric = "clip_saturation"
variant = "wgan_gp"
op = "<"
than = "wgan"
"""
)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run `bench ARGS...` in tmp_path; returns (exit code, stdout + stderr)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str]:
        rc = main(list(args))
        out = capsys.readouterr()
        return rc, out.out + out.err

    return run


def edit_final(run_dir: Path, variant: str, column: str, change) -> None:
    """Apply `change` to `column` of `variant`'s final-step rows in results.csv."""
    df = pd.read_csv(run_dir / "results.csv")
    last = df.groupby(["variant", "dataset", "seed"])["step"].transform("max") == df["step"]
    mask = last & (df["variant"] == variant)
    df.loc[mask, column] = change(df.loc[mask, column])
    df.to_csv(run_dir / "results.csv", index=False)


@pytest.fixture(scope="module")
def gated_source(tmp_path_factory) -> Path:
    """One finished run of the test suite and its baseline, made once for the module."""
    root = tmp_path_factory.mktemp("gated")
    (root / "suites").mkdir()
    (root / "suites" / "gated.toml").write_text(GATED_SUITE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(["run", "suite=gated", "out=run"]) == 0
        assert main(["baseline", "suite=gated", "from=run"]) == 0
    return root


@pytest.fixture
def gated_run(gated_source, cli, tmp_path) -> Path:
    """A copy of the module's run folder, suite file and baseline in this test's tmp_path."""
    shutil.copytree(gated_source, tmp_path, dirs_exist_ok=True)
    return tmp_path / "run"


def test_baseline_stores_bands_seeds_k_and_how_it_was_measured(gated_run, tmp_path, capsys):
    base = json.loads((tmp_path / "results/baselines/gated.json").read_text())
    # 3 metrics with values × 2 variants: mode_kl is empty this early (no high-quality samples)
    assert len(base["bands"]) == 6 and len(base["claims"]) == 1
    assert base["seeds"] == [0, 1, 2, 3, 4] and base["k"] == 3.0
    assert base["machine"]["threads"] == 1 and base["machine"]["device"] == "cpu"
    band = next(
        b for b in base["bands"] if (b["variant"], b["metric"]) == ("wgan", "energy_distance")
    )
    assert len(band["values"]) == 5 and band["higher_is_better"] is False
    half = max(3.0 * band["std"], 0.02 * abs(band["mean"]))
    assert band["low"] == pytest.approx(band["mean"] - half)
    assert band["high"] == pytest.approx(band["mean"] + half)
    assert base["claims"][0]["p_value"] < 0.05


def test_the_run_a_baseline_was_made_from_passes(gated_run, cli):
    rc, out = cli("regress", "suite=gated", "from=run")
    assert rc == 0, out
    assert "passed: all 7 checks" in out and "claim 'wgan_gp's clip_saturation" in out


def test_values_outside_their_band_fail_naming_metric_value_band_and_direction(gated_run, cli):
    edit_final(gated_run, "wgan", "energy_distance", lambda v: v * 50)
    edit_final(gated_run, "wgan_gp", "modes_captured", lambda v: v * 0 - 1)
    rc, out = cli("regress", "suite=gated", "from=run")
    assert rc == 1
    fails = [line for line in out.splitlines() if line.startswith("  FAIL")]
    assert len(fails) == 2, out
    energy = next(line for line in fails if "energy_distance" in line)
    assert "is above its band [" in energy and ", worse (baseline " in energy
    modes = next(line for line in fails if "modes_captured" in line)
    assert "wgan_gp · 8gaussians · modes_captured = -1 is below its band" in modes
    assert ", worse" in modes  # fewer modes is worse
    assert "FAILED: 2 of 7 checks" in out


def test_a_better_value_outside_the_band_also_fails(gated_run, cli):
    edit_final(gated_run, "wgan", "energy_distance", lambda v: v * 0)
    rc, out = cli("regress", "suite=gated", "from=run")
    assert rc == 1 and "wgan · 8gaussians · energy_distance = 0 is below its band" in out
    assert ", better (baseline" in out


def test_a_missing_value_and_a_failing_claim_fail(gated_run, cli):
    edit_final(gated_run, "wgan", "hq_fraction", lambda v: float("nan"))
    edit_final(gated_run, "wgan", "clip_saturation", lambda v: v * 0)
    rc, out = cli("regress", "suite=gated", "from=run")
    assert rc == 1
    assert "wgan · 8gaussians · hq_fraction: not computed in this run" in out
    assert "FAIL  claim 'wgan_gp's clip_saturation is below wgan's' does NOT hold" in out


def test_an_entry_without_bands_is_named(gated_run, cli, tmp_path):
    path = tmp_path / "results/baselines/gated.json"
    base = json.loads(path.read_text())
    base["bands"] = [b for b in base["bands"] if b["variant"] != "wgan_gp"]
    path.write_text(json.dumps(base))
    rc, out = cli("regress", "suite=gated", "from=run")
    assert rc == 0 and "note: no band in the baseline, so not checked: wgan_gp · 8gaussians" in out


def test_configuration_changes_count_only_the_compared_entries(gated_run, cli, tmp_path):
    base = json.loads((tmp_path / "results/baselines/gated.json").read_text())
    config = json.loads((gated_run / "config.json").read_text())
    config["variants"]["wgan"]["lr"] = 0.01
    assert config_changes(base["config"], config, {"wgan", "wgan_gp"}) == ["variants.wgan.lr"]
    assert config_changes(base["config"], config, {"wgan_gp"}) == []


def test_too_few_seeds_are_refused_before_training(write_suite, cli, tmp_path):
    write_suite(GATED_SUITE, name="gated")
    rc, out = cli("baseline", "suite=gated", "seeds=0,1")
    assert rc == 2 and "a baseline needs at least 5 seeds" in out and "seeds=0,1,2,3,4" in out
    assert not (tmp_path / "results").exists()


def test_a_claim_that_fails_in_the_run_refuses_the_baseline(gated_run, cli, tmp_path):
    (tmp_path / "suites" / "gated.toml").write_text(GATED_SUITE.replace('op = "<"', 'op = ">"'))
    before = (tmp_path / "results/baselines/gated.json").read_text()
    rc, out = cli("baseline", "suite=gated", "from=run")
    assert rc == 2 and "claims must hold" in out and "does NOT hold" in out
    assert (tmp_path / "results/baselines/gated.json").read_text() == before  # left as it was


def test_regress_without_a_baseline_stops_before_training(write_suite, cli, tmp_path):
    write_suite(GATED_SUITE, name="gated")
    rc, out = cli("regress", "suite=gated")
    assert rc == 2 and "no baseline at results/baselines/gated.json" in out
    assert "nox -s baseline" in out and not (tmp_path / "results/runs").exists()


def test_new_baseline_shows_what_changed(gated_run, cli, tmp_path):
    edit_final(gated_run, "wgan", "energy_distance", lambda v: v * 2)
    rc, out = cli("baseline", "suite=gated", "from=run")
    assert rc == 0
    assert "wgan · 8gaussians · energy_distance: " in out and "(+100.0%)" in out


QUALITY_SUITES = (
    "ci",
    "ci_paired",
    "ci_unpaired",
    "ci_superres",
    "ci_likelihood",
    "ci_anomaly",
    "ci_stylegan",
    "ci_music",
)  # as in noxfile.py: nox -s regress gates each of them


def _noxfile_quality_suites() -> tuple[str, ...]:
    """The QUALITY_SUITES tuple that noxfile.py assigns, read without importing nox."""
    tree = ast.parse((REPO / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "QUALITY_SUITES":
            return ast.literal_eval(node.value)
    raise AssertionError("noxfile.py assigns no QUALITY_SUITES")


def test_the_quality_suites_together_train_every_registered_variant():
    load_all()
    gated = {e.variant for name in QUALITY_SUITES
             for e in load_suite(str(REPO / "suites" / f"{name}.toml")).entries}  # fmt: skip
    assert gated == set(VARIANTS.names())
    assert _noxfile_quality_suites() == QUALITY_SUITES


@pytest.mark.parametrize("name", QUALITY_SUITES)
def test_a_quality_suites_baseline_matches_it(name):
    load_all()
    suite = load_suite(str(REPO / "suites" / f"{name}.toml"))
    assert len(suite.spec.seeds) >= suite.spec.regress.min_seeds
    base = json.loads((REPO / baseline_path(name, "default")).read_text())
    resolved = {**suite.resolved(), "device": "cpu"}
    assert config_changes(base["config"], resolved, {e.label for e in suite.entries}) == [], (
        f"suites/{name}.toml changed since results/baselines/{name}.json was made: run "
        "nox -s baseline"
    )
    banded = {(b["variant"], b["metric"].split("/")[0]) for b in base["bands"]}
    for entry in suite.entries:
        assert (entry.label, suite.spec.metrics[0]) in banded
    assert [c["claim"] for c in base["claims"]] == [c.describe() for c in suite.spec.claims]


def test_a_degraded_variant_trips_the_quality_gate(cli, cache, monkeypatch, tmp_path):
    """dcgan with its learning rate ×1000, against the committed ci baseline.

    (×100 trips it too, but as *better*: at the ci suite's 300 steps lr 0.02 beat 2e-4, FID 106 vs 403.)
    """
    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    monkeypatch.chdir(REPO)  # the committed results/baselines/ci.json
    out_dir = tmp_path / "degraded-ci-run"  # its own folder, never a leftover of an earlier run
    rc, out = cli("regress", "suite=ci", "entries=dcgan", "variants.dcgan.lr=0.2",
                      "workers=2", f"out={out_dir}")  # fmt: skip
    assert rc == 1, out
    assert "FAIL  dcgan · digits · fid/lenet-digits = " in out and "is above its band" in out
    assert ", worse (baseline" in out
    assert "variants.dcgan.lr (0.0002 → 0.2)" in out  # the deliberate change is named
