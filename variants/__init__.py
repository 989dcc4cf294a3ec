"""Variant implementations, one algorithm per module. Importing this package registers them all."""

from variants import (  # noqa: F401
    anogan,
    autoencoder,
    bicubic,
    cgan,
    cyclegan,
    dcgan,
    f_anogan,
    gan,
    lsgan,
    nicegan,
    pix2pix,
    pixelcnn,
    pixelrnn,
    srgan,
    srresnet,
    stylegan,
    ugatit,
    vae,
    wgan,
    wgan_gp,
)  # fmt: skip
