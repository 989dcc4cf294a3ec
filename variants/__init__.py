"""Variant implementations, one algorithm per module. Importing this package registers them all."""

from variants import (  # noqa: F401
    bicubic,
    cgan,
    cyclegan,
    dcgan,
    gan,
    lsgan,
    nicegan,
    pix2pix,
    pixelcnn,
    pixelrnn,
    srgan,
    srresnet,
    ugatit,
    vae,
    wgan,
    wgan_gp,
)  # fmt: skip
