import pytest

from bench.errors import UsageError
from bench.registry import DATASETS, METRICS, VARIANTS, Registry, RegistryError, load_all


def test_duplicate_name_is_refused():
    reg = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(RegistryError, match="thing 'a' is already registered"):
        reg.add("a", 2)
    assert reg.get("a") == 1


def test_unknown_name_lists_known_names():
    reg = Registry("thing")
    reg.register("beta")(object())
    reg.register("alpha")(object())
    with pytest.raises(RegistryError) as exc:
        reg.get("gamma")
    assert "unknown thing 'gamma'; known things: alpha, beta" in str(exc.value)
    assert isinstance(exc.value, UsageError)


def test_every_module_registers_its_names():
    load_all()
    assert {"gan", "wgan", "wgan_gp"} <= set(VARIANTS.names())
    assert {"8gaussians", "25gaussians", "swissroll", "ring8", "grid25"} <= set(DATASETS.names())
    assert {"modes_captured", "hq_fraction", "mode_kl", "energy_distance"} <= set(METRICS.names())


def test_registering_an_existing_variant_again_fails():
    load_all()
    with pytest.raises(RegistryError, match="variant 'wgan' is already registered"):
        VARIANTS.register("wgan")(object)
