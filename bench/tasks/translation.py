"""Paired image-to-image translation (Pix2Pix, Isola et al., CVPR 2017): source image → target.

A cell trains on (source, target) pairs of the training split. At each evaluation the model
translates a fixed set of held-out sources (fixed per seed); outputs are scored against their own
targets (paired metrics: L1, PSNR, SSIM), as a set against target-domain images in a domain
classifier's feature space (FID, KID, ...), and by whether that classifier reads the source's class
from the output (label preservation, the digit analogue of Pix2Pix's FCN-score).

Evaluation does not change the model: every network's buffers (BatchNorm statistics) are restored
afterwards, and the randomness it uses (Pix2Pix keeps dropout on at test time) comes from a
generator of the eval stream, so training continues exactly as it would have without it.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from bench.datasets.images import PairedImageDataset, to_uint8
from bench.metrics.base import NotApplicable
from bench.metrics.images import ImageMetric
from bench.metrics.pairs import PairMetric
from bench.registry import METRICS, TASKS
from bench.tasks.base import (
    EvalContext,
    Evaluation,
    Task,
    critic_columns,
    evaluation_mode,
    image_evaluator,
    leaving_no_trace,
    sample_metrics,
    save_grid,
    save_samples,
)

GRID_PAIRS = 16  # source | output | target triples in each evaluation's grid (two per row)
EVAL_SPLIT = "held_out"  # sources translated at evaluation: never seen in training


@TASKS.register("paired_translation")
class PairedTranslation(Task):
    name = "paired_translation"
    description = "source image → target image, trained on aligned pairs (Pix2Pix)"
    needs = "translates"
    data_kind = "paired"

    def batches(self, dataset, variant, batch_size, generator, device):  # noqa: ANN001, ANN201
        def next_real() -> tuple[torch.Tensor, torch.Tensor]:
            source, target, _ = dataset.sample_pairs(batch_size, generator)
            return source.to(device), target.to(device)

        return next_real

    def evaluation(self, ctx: EvalContext) -> Evaluation:
        return TranslationEval(ctx)


class TranslationEval(Evaluation):
    border = 0  # pixels a y_channel pair metric crops from each side (super-resolution: scale)

    def __init__(self, ctx: EvalContext) -> None:
        super().__init__()
        self.ctx = ctx
        dataset: PairedImageDataset = ctx.dataset  # type: ignore[assignment]
        cfg = ctx.eval_cfg
        self.source, self.target, self.labels = dataset.fixed_pairs(
            EVAL_SPLIT, cfg["num_samples"], ctx.generator
        )
        self.notes = []
        if len(self.source) < cfg["num_samples"]:
            self.notes.append(f"translated all {len(self.source)} {EVAL_SPLIT} sources "
                              f"(eval.num_samples = {cfg['num_samples']})")  # fmt: skip
        # The seed of the randomness a model uses while translating (dropout), fixed per cell.
        self.translate_seed = int(torch.randint(2**62, (1,), generator=ctx.generator))
        metrics = [METRICS.get(name) for name in ctx.metrics]
        self.pair_metrics = [m.bind(cfg, ctx.device) for m in metrics if isinstance(m, PairMetric)]
        image_metrics = [m.name for m in metrics if isinstance(m, ImageMetric)]
        self.metrics = [m for m in metrics if not isinstance(m, PairMetric | ImageMetric)]
        self.evaluator = None
        if image_metrics:
            self.evaluator = image_evaluator(ctx, dataset, image_metrics, len(self.source))

    def save_grid(self, step: int, fake: torch.Tensor) -> None:
        """source | output | target triples, two per row."""
        triples = torch.stack([self.source, fake, self.target], 1)[:GRID_PAIRS].flatten(0, 1)
        save_grid(self.ctx.cell_dir / "grids" / f"step_{step:07d}.png", to_uint8(triples), 6)

    def critic_outputs(self, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D's scores of the real and the generated side, as in training: (source, target)
        against (source, output)."""
        variant, n = self.ctx.variant, self.ctx.eval_cfg["batch_size"]
        src = self.source.to(self.ctx.device)
        real_out = torch.cat([variant.critic(t, s) for t, s in zip(
            self.target.to(self.ctx.device).split(n), src.split(n), strict=True)])  # fmt: skip
        fake_out = torch.cat([variant.critic(f, s) for f, s in zip(
            fake.split(n), src.split(n), strict=True)])  # fmt: skip
        return real_out, fake_out

    def translate(self) -> torch.Tensor:
        """Outputs for the fixed sources; the model's buffers and the global RNG are untouched."""
        variant, device, cfg = self.ctx.variant, self.ctx.device, self.ctx.eval_cfg
        chunks = self.source.split(cfg["batch_size"])

        def outputs() -> torch.Tensor:
            return torch.cat([variant.translate(s.to(device)) for s in chunks])

        return leaving_no_trace(variant, device, self.translate_seed, cfg["batch_norm"], outputs)

    def __call__(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        ctx, variant, dataset = self.ctx, self.ctx.variant, self.ctx.dataset
        fake = self.translate()
        fake_cpu = fake.cpu()
        notes = list(self.notes)

        row, sample_notes = sample_metrics(self.metrics, self.target, fake_cpu, dataset)
        notes += sample_notes
        for metric in self.pair_metrics:
            try:
                row[metric.name] = metric.pairs(fake_cpu, self.target, self.border)
            except NotApplicable as exc:
                row[metric.name] = float("nan")
                notes.append(f"{metric.name}: {exc}")
        if self.evaluator is not None:
            image_row, image_notes = self.evaluator(fake_cpu, self.labels)
            row.update(image_row)
            notes += image_notes
        self.save_grid(step, fake_cpu)

        if "critic" in variant.capabilities:
            with torch.no_grad(), evaluation_mode(variant, ctx.eval_cfg["batch_norm"]):
                real_out, fake_out = self.critic_outputs(fake)
            row.update(critic_columns(variant, real_out, fake_out, ctx.eval_cfg["hist_bins"],
                                      step, self.histograms))  # fmt: skip
        if step == ctx.gen_steps:
            save_samples(ctx.cell_dir, source=to_uint8(self.source[:1000]),
                         fake=to_uint8(fake_cpu[:1000]), target=to_uint8(self.target[:1000]))  # fmt: skip
        row["eval_seconds"] = time.perf_counter() - t0
        if notes:
            row["note"] = "; ".join(dict.fromkeys(notes))
        return row
