"""Every suite file that ships loads, with every one of its profiles."""

import tomllib
from pathlib import Path

import pytest

from bench.config import load_suite

SUITES = sorted((Path(__file__).resolve().parents[1] / "suites").glob("*.toml"))


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_suite_file_loads_with_every_profile(path):
    profiles = ["default", *tomllib.loads(path.read_text()).get("profiles", {})]
    for profile in profiles:
        suite = load_suite(str(path), profile)
        assert suite.cells(), f"{path.name} profile {profile} has no cells"


def test_wgan_vs_gp_has_the_paper_experiments():
    suite = load_suite("wgan_vs_gp")
    entries = {e.label: e for e in suite.entries}
    assert {"gan", "wgan", "wgan_gp"} <= set(entries)
    assert len(suite.spec.seeds) >= 3
    deep = [e for e in suite.entries if e.config.depth == 12]
    assert sorted(e.config.clip_value for e in deep if e.variant == "wgan") == [0.001, 0.01, 0.1]
    assert any(e.variant == "wgan_gp" for e in deep)
    assert all(e.datasets == ("swissroll",) for e in deep)
    assert load_suite("wgan_vs_gp", "paper").spec.budget.gen_steps == 100_000
