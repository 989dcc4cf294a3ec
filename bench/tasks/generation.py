"""Noise → sample generation (optionally class-conditional): every GAN of the original registry.

A cell draws real samples (with labels for a conditional variant), and at each evaluation the model
generates samples from latents fixed per seed; they are scored against real samples drawn once.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from bench import diagnostics
from bench.datasets.images import ImageDataset, to_float, to_uint8
from bench.metrics.images import ImageMetric
from bench.metrics.likelihood import ModelMetric
from bench.metrics.ppl import PathLengths, PathMetric
from bench.registry import METRICS, TASKS
from bench.tasks.base import (
    EvalContext,
    Evaluation,
    Task,
    critic_columns,
    image_evaluator,
    leaving_no_trace,
    sample_metrics,
    save_grid,
    save_samples,
)


@TASKS.register("generation")
class Generation(Task):
    name = "generation"
    description = "noise (and a class label, for conditional variants) → sample"
    needs = "samples"
    data_kind = "samples"

    def batches(self, dataset, variant, batch_size, generator, device):  # noqa: ANN001, ANN201
        def next_real() -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
            if variant.conditional:
                x, y = dataset.sample_labelled(batch_size, generator)
                return x.to(device), y.to(device)
            return dataset.sample(batch_size, generator).to(device)

        return next_real

    def evaluation(self, ctx: EvalContext) -> Evaluation:
        return GenerationEval(ctx)


def _chunks(x: torch.Tensor, labels: torch.Tensor | None, n: int) -> list[tuple]:
    if labels is None:
        return [(c, None) for c in x.split(n)]
    return list(zip(x.split(n), labels.split(n), strict=True))


class GenerationEval(Evaluation):
    """Samples from fixed latents, scored against fixed real samples; critic diagnostics."""

    def __init__(self, ctx: EvalContext) -> None:
        super().__init__()
        self.ctx = ctx
        variant, dataset, device, gen = ctx.variant, ctx.dataset, ctx.device, ctx.generator
        n_eval = ctx.eval_cfg["num_samples"]
        # The evaluation inputs, drawn in this order from the cell's eval stream.
        if (
            variant.conditional
        ):  # real labels for the critic; generated samples cycle through classes
            real, real_labels = dataset.sample_labelled(n_eval, gen)
            self.real, self.real_labels = real.to(device), real_labels.to(device)
            self.fake_labels = (torch.arange(n_eval) % dataset.num_classes).to(device)
        else:
            self.real, self.real_labels = dataset.sample(n_eval, gen).to(device), None
            self.fake_labels = None
        self.z = torch.randn(n_eval, variant.z_dim, generator=gen).to(device)
        self.n_diag = min(ctx.eval_cfg["diag_samples"], n_eval)
        metrics = [METRICS.get(name) for name in ctx.metrics]
        # Image metrics share one feature extraction per backbone, with cached real features.
        self.image_metrics = [
            m.name for m in metrics if isinstance(m, ImageMetric) and not isinstance(m, PathMetric)
        ]
        # Likelihood metrics score the model itself on fixed held-out images.
        self.model_metrics = [m.name for m in metrics if isinstance(m, ModelMetric)]
        self.metrics = [m for m in metrics if not isinstance(m, ImageMetric | ModelMetric)]
        if self.model_metrics and "likelihood" in variant.capabilities:
            images, _ = dataset.reference("held_out", ctx.eval_cfg["likelihood_samples"])
            self.held_out = to_float(images).to(device)
            # One seed for a bound's importance samples: every evaluation draws the same noise.
            self.nll_seed = int(torch.randint(2**62, (1,), generator=gen))
        self.evaluator = None
        if self.image_metrics and isinstance(dataset, ImageDataset):
            self.evaluator = image_evaluator(ctx, dataset, self.image_metrics, n_eval)
        # Path lengths measure the model along latent paths drawn here, after every other input.
        path_metrics = [m for m in metrics if isinstance(m, PathMetric)]
        self.paths = None
        if path_metrics and isinstance(dataset, ImageDataset):
            self.paths = PathLengths(variant, dataset, path_metrics, ctx.eval_cfg, ctx.cache_dir,
                                     device, gen)  # fmt: skip
        # A style-based generator's mixing and truncation grids: latents from a seed of their own.
        self.grid_seed = None
        if hasattr(variant, "mix"):
            self.grid_seed = int(torch.randint(2**62, (1,), generator=gen))
        # Noise a model draws while sampling (StyleGAN's noise inputs) comes from this seed, the same
        # at every evaluation, and training's random stream never sees it: otherwise when the
        # evaluations happen (eval.every) would change the training that follows them.
        self.sample_seed = int(torch.randint(2**62, (1,), generator=gen))

    def __call__(self, step: int) -> dict[str, Any]:
        ctx = self.ctx
        return leaving_no_trace(
            ctx.variant,
            ctx.device,
            self.sample_seed,
            ctx.eval_cfg["batch_norm"],
            lambda: self._evaluate(step),
        )

    def _evaluate(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        ctx, variant, dataset = self.ctx, self.ctx.variant, self.ctx.dataset
        n = ctx.eval_cfg["batch_size"]
        fake = torch.cat([variant.generate(z, y) for z, y in _chunks(self.z, self.fake_labels, n)])
        real_cpu, fake_cpu = self.real.cpu(), fake.cpu()
        sample_seconds = time.perf_counter() - t0

        row, notes = sample_metrics(self.metrics, real_cpu, fake_cpu, dataset)
        row["sample_s_per_image"] = sample_seconds / len(fake)
        if self.model_metrics:
            row.update(self._likelihood(notes))
        if self.evaluator is not None:
            image_row, image_notes = self.evaluator(fake_cpu, self.fake_labels)
            _save_grid(ctx, step, fake_cpu, variant.conditional, dataset.num_classes)
            row.update(image_row)
            notes += image_notes
        elif self.image_metrics:
            notes.append(f"{', '.join(self.image_metrics)}: need an image dataset; "
                         f"'{dataset.name}' is not one")  # fmt: skip
        if self.paths is not None:
            path_row, path_notes = self.paths(variant)
            row.update(path_row)
            notes += path_notes

        # Critic diagnostics: its loss on the evaluation batch, weight pile-up, gradient by depth.
        if "critic" in variant.capabilities:
            with torch.no_grad():
                real_out = torch.cat(
                    [variant.critic(x, y) for x, y in _chunks(self.real, self.real_labels, n)]
                )
                fake_out = torch.cat(
                    [variant.critic(x, y) for x, y in _chunks(fake, self.fake_labels, n)]
                )
            row.update(critic_columns(variant, real_out, fake_out, ctx.eval_cfg["hist_bins"],
                                      step, self.histograms))  # fmt: skip
            if not variant.conditional:  # the layer-by-layer diagnostic feeds D samples alone
                norms = diagnostics.activation_grad_norms(
                    variant.D, variant.critic_loss, self.real[: self.n_diag], fake[: self.n_diag]
                )
                for i, norm in enumerate(norms, start=1):
                    row[f"act_grad_norm/{i:02d}"] = norm
                row["act_grad_log10_slope"] = diagnostics.log10_slope(norms)
        if step == ctx.gen_steps:
            if self.grid_seed is not None:
                _style_grids(ctx, self.grid_seed)
            if self.evaluator is not None:  # images: keep the first 1,000 as uint8 pictures
                real_cpu, fake_cpu = to_uint8(real_cpu[:1000]), to_uint8(fake_cpu[:1000])
            save_samples(ctx.cell_dir, real=real_cpu, fake=fake_cpu)
        row["eval_seconds"] = time.perf_counter() - t0
        if notes:
            row["note"] = "; ".join(dict.fromkeys(notes))
        return row

    def _likelihood(self, notes: list[str]) -> dict[str, float]:
        """The likelihood metrics of the variant on the held-out images, or empty with the reason."""
        variant, k = self.ctx.variant, self.ctx.eval_cfg["iwae_k"]
        if "likelihood" not in variant.capabilities:
            notes.append(f"{', '.join(self.model_metrics)}: {type(variant).__name__} defines no "
                         "likelihood of an image (a GAN's generator puts no density on pixels)")  # fmt: skip
            return dict.fromkeys(self.model_metrics, float("nan"))
        per_image = variant.nll(self.held_out, torch.Generator().manual_seed(self.nll_seed), k)
        nats = {name: float(v.double().mean()) for name, v in per_image.items()}
        dims = self.held_out[0].numel()
        nats["bits_per_dim"] = nats["nll_nats"] / (dims * math.log(2))
        if "neg_elbo_nats" in self.model_metrics and "neg_elbo_nats" not in nats:
            notes.append(f"neg_elbo_nats: {type(variant).__name__}'s likelihood is exact, "
                         "without a bound")  # fmt: skip
        return {name: nats.get(name, float("nan")) for name in self.model_metrics}


def _save_grid(ctx: EvalContext, step: int, fake: torch.Tensor, by_class: bool, k: int) -> None:
    """A grid of generated images; for a conditional variant one column per class (its labels
    cycle through the classes, so sample i has class i mod K)."""
    ncols = k if by_class and k <= 16 else 8
    save_grid(ctx.cell_dir / "grids" / f"step_{step:07d}.png", to_uint8(fake[: ncols * 8]), ncols)


TRUNCATION_PSIS = (1.0, 0.7, 0.5, 0.0, -0.5, -1.0)  # the columns of Karras et al. 2019, Figure 8


@torch.no_grad()
def _style_grids(ctx: EvalContext, seed: int) -> None:
    """A style-based generator's pictures, with its fixed noise images:

    - grids/style_mixing.png (a model with styles): the top row shows 6 sources A, the left
      column 4 sources B; the image in row i, column j takes its coarse styles (the layers of the
      lowest resolution) from B_i and every finer style from A_j (Karras et al. 2019, Figure 3);
    - grids/truncation.png (a model with a mapping network): 8 latents (rows) at ψ = 1, 0.7, 0.5,
      0, −0.5, −1 (columns), w' = w̄ + ψ(w − w̄) (Figure 8).
    """
    variant, device = ctx.variant, ctx.device
    if not getattr(variant.cfg, "styles", False):
        return
    g = torch.Generator().manual_seed(seed)
    z_a, z_b = (torch.randn(k, variant.z_dim, generator=g).to(device) for k in (6, 4))
    w_a, w_b = variant.map(z_a), variant.map(z_b)
    n = variant.num_ws

    def synth(w: torch.Tensor) -> torch.Tensor:
        return variant.synthesise(w[:, None].expand(-1, n, -1), noise="const")

    tops, lefts = synth(w_a), synth(w_b)
    rows = [torch.cat([torch.full_like(tops[:1], -1.0), tops])]
    for i in range(len(w_b)):
        mixed = variant.mix(w_b[i : i + 1].expand(len(w_a), -1), w_a, 2)
        rows.append(torch.cat([lefts[i : i + 1], variant.synthesise(mixed, noise="const")]))
    grids = ctx.cell_dir / "grids"
    save_grid(grids / "style_mixing.png", to_uint8(torch.cat(rows)), len(w_a) + 1)
    if getattr(variant, "has_mapping", False):
        w = variant.map(torch.randn(8, variant.z_dim, generator=g).to(device))
        cells = [synth(variant.truncate(w[i : i + 1], psi)) for i in range(len(w))
                 for psi in TRUNCATION_PSIS]  # fmt: skip
        save_grid(grids / "truncation.png", to_uint8(torch.cat(cells)), len(TRUNCATION_PSIS))
