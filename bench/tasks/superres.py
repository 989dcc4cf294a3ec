"""Single-image super-resolution (SRGAN, Ledig et al., CVPR 2017): LR image → HR image, ×`scale`.

A cell trains on (LR, HR) pairs of the training split, the LR images made from the HR ones by the
dataset's stated downsampler (bench/datasets/superres.py). At each evaluation the model upscales a
fixed set of held-out LR images (fixed per seed). Outputs are scored against their HR originals as
the SR papers do (PSNR and SSIM on the Y channel with `scale` border pixels cropped: `psnr_y`,
`ssim_y`), as a set against held-out HR images in a feature space (FID, KID: the papers' "perceptual
quality" side of the trade-off), and, for digits, by whether the domain classifier still reads the
digit. Each evaluation saves a grid LR | bicubic | output | HR.

SRGAN's content loss is a distance between feature maps of a fixed network. The paper's VGG19 needs
ImageNet weights that no package ships offline, so the task hands a variant that asks for one
(`wants_content_network`) the domain classifier of the dataset's feature space, cut after its
second convolution's activation (before the second pooling, as VGG54 is cut before a pooling).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.backbones import column_name
from bench.datasets.base import Dataset
from bench.datasets.images import has_domain_classifier, to_uint8
from bench.errors import UsageError
from bench.registry import DATASETS, TASKS
from bench.tasks.base import EvalContext, Evaluation, save_grid
from bench.tasks.translation import GRID_PAIRS, PairedTranslation, TranslationEval
from bench.variant import Variant

CONTENT_LAYERS = 7  # LeNet.body[:7]: conv-BN-ReLU-pool-conv-BN-ReLU, the second conv's activation


@TASKS.register("super_resolution")
class SuperResolution(PairedTranslation):
    name = "super_resolution"
    description = (
        "LR image → HR image ×scale, trained on (LR, HR) pairs of a stated downsampler (SRGAN)"
    )
    needs = "upscales"
    data_kind = "superres"

    def evaluation(self, ctx: EvalContext) -> Evaluation:
        return SuperResEval(ctx)

    def prepare_variant(self, variant: Variant, dataset: Dataset, cache_dir: Path) -> None:
        if getattr(variant, "wants_content_network", False):
            net, name = content_network(dataset, cache_dir)
            variant.set_content_network(net.to(variant.device), name)


def content_network(dataset: Dataset, cache_dir: Path) -> tuple[nn.Module, str]:
    """The frozen feature map of the domain classifier that measures `dataset`, and its name
    (`lenet-mnist5k:conv2`); trained and cached first if missing."""
    from bench.backbones import domain

    if not has_domain_classifier(dataset.name):
        raise UsageError(f"dataset '{dataset.name}' has no classes to train a domain classifier "
                         "on; set content_loss = \"mse\" or \"vgg54\" (with vgg_weights)")  # fmt: skip
    source = DATASETS.get(dataset.classifier_data)()  # type: ignore[attr-defined]
    path, _ = domain.load_or_train(cache_dir, source)
    with torch.random.fork_rng(devices=[]):  # building LeNet must not move the cell's stream
        lenet = domain.load_lenet(path)
    net = lenet.body[:CONTENT_LAYERS].eval().requires_grad_(False)
    return net, f"{column_name('domain', dataset.name)}:conv2"


class SuperResEval(TranslationEval):
    def __init__(self, ctx: EvalContext) -> None:
        super().__init__(ctx)
        self.border = ctx.dataset.scale  # type: ignore[attr-defined]

    def save_grid(self, step: int, fake: torch.Tensor) -> None:
        """LR (pixels enlarged) | bicubic | output | HR quadruples, two per row."""
        size = self.target.shape[-2:]
        lr = F.interpolate(self.source[:GRID_PAIRS], size=size, mode="nearest")
        bicubic = F.interpolate(self.source[:GRID_PAIRS], size=size, mode="bicubic",
                                align_corners=False).clamp(-1, 1)  # fmt: skip
        quads = torch.stack([lr, bicubic, fake[:GRID_PAIRS], self.target[:GRID_PAIRS]], 1)
        save_grid(self.ctx.cell_dir / "grids" / f"step_{step:07d}.png",
                  to_uint8(quads.flatten(0, 1)), 8)  # fmt: skip

    def critic_outputs(self, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D judges HR images alone: the real HR images against the outputs."""
        variant, n = self.ctx.variant, self.ctx.eval_cfg["batch_size"]
        real_out = torch.cat([variant.critic(t) for t in self.target.to(self.ctx.device).split(n)])
        fake_out = torch.cat([variant.critic(f) for f in fake.split(n)])
        return real_out, fake_out
