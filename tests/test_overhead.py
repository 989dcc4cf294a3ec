"""The harness-overhead measurement runs end to end (its numbers go in the README)."""

import math

from bench.overhead import measure


def test_overhead_measurement_compares_harness_and_bare_loop(cache, monkeypatch):
    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    result = measure(steps=3, repeats=1)
    assert result["harness_s"] > 0 and result["bare_s"] > 0
    assert math.isclose(result["ratio"], result["harness_s"] / result["bare_s"])
