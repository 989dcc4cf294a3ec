"""Variant implementations, one algorithm per module. Importing this package registers them all."""

from variants import gan, wgan, wgan_gp  # noqa: F401
