"""A pytest plugin for tests/test_speed.py: every variant's training step does its work three times.

Loaded with `-p tests.slow_step_plugin` into a benchmark run, it is the deliberate slowdown that the
speed gate must catch.
"""

from bench.registry import VARIANTS, load_all


def pytest_configure(config) -> None:
    load_all()
    for name in VARIANTS.names():
        cls = VARIANTS.get(name)
        if "train_step" not in vars(cls):
            continue  # inherits a step that is slowed already (dcgan runs gan's)
        original = cls.train_step

        def slowed(self, next_real, _original=original):
            _original(self, next_real)
            _original(self, next_real)
            return _original(self, next_real)

        cls.train_step = slowed
