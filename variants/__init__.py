"""Variant implementations, one algorithm per module. Importing this package registers them all."""

from variants import cgan, cyclegan, dcgan, gan, lsgan, pix2pix, wgan, wgan_gp  # noqa: F401
