"""gan-bench: train GAN variants under equal budgets and seeds, and measure them the same way."""

__version__ = "0.1.0"
