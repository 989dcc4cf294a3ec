"""Unpaired image-to-image translation (CycleGAN, Zhu et al., ICCV 2017): domain A ↔ domain B.

A cell trains on independent draws of A and B images. At each evaluation the model translates a
fixed set of held-out A images to B and of held-out B images to A (fixed per seed). Each direction
is scored in its target domain: FID/KID/... against that domain's images in its own classifier's
feature space, and label preservation (does the target domain's classifier read the source
image's class from the output?). `cycle_l1` measures how well a round trip A → B → A (and
B → A → B) returns the input. Columns name the direction: `fid/lenet-textured_digits/A2B`,
`cycle_l1/A2B2A`. Each direction's critic (the target domain's) is diagnosed as a single critic is,
its columns named after it: `critic_loss/D_B`, `clip_saturation/D_B`. Evaluation leaves no trace
on the model (see `leaving_no_trace`).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from bench.datasets.images import UnpairedImageDataset, to_float, to_uint8
from bench.metrics.images import ImageEvaluator, ImageMetric
from bench.metrics.pairs import mean_l1
from bench.registry import METRICS, TASKS
from bench.tasks.base import (
    EvalContext,
    Evaluation,
    Task,
    critic_columns,
    evaluation_mode,
    image_evaluator,
    leaving_no_trace,
    save_grid,
    save_samples,
)

DIRECTIONS = {"A2B": ("A", "B"), "B2A": ("B", "A")}
GRID_PAIRS = 16  # source | output | round trip triples per direction in each evaluation's grid
EVAL_SPLIT = "held_out"


@TASKS.register("unpaired_translation")
class UnpairedTranslation(Task):
    name = "unpaired_translation"
    description = "domain A ↔ domain B, trained on unaligned images of each (CycleGAN)"
    needs = "translates_unpaired"
    data_kind = "unpaired"

    def batches(self, dataset, variant, batch_size, generator, device):  # noqa: ANN001, ANN201
        def next_real() -> tuple[torch.Tensor, torch.Tensor]:
            a, b = dataset.sample_domains(batch_size, generator)
            return a.to(device), b.to(device)

        return next_real

    def evaluation(self, ctx: EvalContext) -> Evaluation:
        return UnpairedEval(ctx)

    def result_columns(self, metrics: list[str], backbones: list[str], dataset: str) -> list[str]:
        from bench.backbones import column_name
        from bench.metrics import produced_columns
        from bench.registry import DATASETS

        classifiers = DATASETS.get(dataset).domain_classifiers
        out = []
        for direction, (source, target) in DIRECTIONS.items():
            names = [column_name(kind, classifiers[target]) for kind in backbones]
            image = [m for m in metrics if m != "cycle_l1"]
            out += [f"{c}/{direction}" for c in produced_columns(image, names)]
            if "cycle_l1" in metrics:
                out.append(f"cycle_l1/{direction}2{source}")
        return out


def _mean_l1(x: torch.Tensor, y: torch.Tensor) -> float:
    return mean_l1(x.double().add(1).div(2), y.double().add(1).div(2))


class UnpairedEval(Evaluation):
    def __init__(self, ctx: EvalContext) -> None:
        super().__init__()
        self.ctx = ctx
        dataset: UnpairedImageDataset = ctx.dataset  # type: ignore[assignment]
        cfg = ctx.eval_cfg
        # Fixed held-out images of each domain, in an order drawn from the eval stream.
        self.images: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for key in ("A", "B"):
            images, labels = dataset.domains[key].split(EVAL_SPLIT)
            idx = torch.randperm(len(images), generator=ctx.generator)[: cfg["num_samples"]]
            self.images[key] = (to_float(images[idx]), labels[idx])
        self.translate_seed = int(torch.randint(2**62, (1,), generator=ctx.generator))
        self.notes = [
            f"translated all {len(self.images[k][0])} {EVAL_SPLIT} images of {k} "
            f"(eval.num_samples = {cfg['num_samples']})"
            for k in ("A", "B") if len(self.images[k][0]) < cfg["num_samples"]
        ]  # fmt: skip
        metrics = [METRICS.get(name) for name in ctx.metrics]
        image_metrics = [m.name for m in metrics if isinstance(m, ImageMetric)]
        self.cycle = "cycle_l1" in ctx.metrics
        # One evaluator per direction, in the target domain's feature space.
        self.evaluators: dict[str, ImageEvaluator] = {}
        for direction, (_, target) in DIRECTIONS.items():
            if image_metrics:
                self.evaluators[direction] = image_evaluator(
                    ctx, dataset.domains[target], image_metrics, len(self.images[target][0])
                )

    def _translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        variant, device = self.ctx.variant, self.ctx.device
        return torch.cat([variant.translate(x.to(device), direction).cpu()
                          for x in images.split(self.ctx.eval_cfg["batch_size"])])  # fmt: skip

    def _critic_columns(self, fake: torch.Tensor, domain: str, step: int) -> dict[str, Any]:
        variant, cfg, n = self.ctx.variant, self.ctx.eval_cfg, self.ctx.eval_cfg["batch_size"]

        def scores(images: torch.Tensor) -> torch.Tensor:
            device = self.ctx.device
            return torch.cat([variant.judge(x.to(device), domain) for x in images.split(n)])

        with torch.no_grad(), evaluation_mode(variant, cfg["batch_norm"]):
            real_out, fake_out = scores(self.images[domain][0]), scores(fake)
        return critic_columns(variant, real_out, fake_out, cfg["hist_bins"], step,
                              self.histograms, name=f"D_{domain}")  # fmt: skip

    def __call__(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        ctx = self.ctx
        row: dict[str, Any] = {}
        notes = list(self.notes)
        triples = []
        outputs = {}
        for direction, (source, target) in DIRECTIONS.items():
            back = direction[::-1]  # A2B → B2A
            images, labels = self.images[source]

            def round_trip(images: torch.Tensor = images, d: str = direction, b: str = back):
                out = self._translate(images, d)
                return out, self._translate(out, b)

            fake, rec = leaving_no_trace(ctx.variant, ctx.device, self.translate_seed,
                                         ctx.eval_cfg["batch_norm"], round_trip)  # fmt: skip
            outputs[direction] = fake
            if direction in self.evaluators:
                image_row, image_notes = self.evaluators[direction](fake, labels)
                row.update({f"{k}/{direction}": v for k, v in image_row.items()})
                notes += [f"{direction}: {n}" for n in image_notes]
            if self.cycle:
                row[f"cycle_l1/{direction}2{source}"] = _mean_l1(rec, images)
            # Critic diagnostics: the target domain's critic judges its held-out images against the
            # outputs, columns suffixed by the critic's name (`critic_loss/D_B` for A2B).
            if "critic" in ctx.variant.capabilities:
                row.update(self._critic_columns(fake, target, step))
            # Grey and colour domains share one grid: grey images are repeated over R, G and B.
            channels = max(dataset.shape[0] for dataset in ctx.dataset.domains.values())
            triple = [
                x[: GRID_PAIRS // 2].expand(-1, channels, -1, -1) for x in (images, fake, rec)
            ]
            triples.append(torch.stack(triple, 1).flatten(0, 1))
        save_grid(ctx.cell_dir / "grids" / f"step_{step:07d}.png",
                  to_uint8(torch.cat(triples)), 6)  # fmt: skip
        if step == ctx.gen_steps:
            save_samples(ctx.cell_dir, **{f"source_{s}": to_uint8(self.images[s][0][:1000])
                                          for s in ("A", "B")},
                         **{f"fake_{d}": to_uint8(o[:1000]) for d, o in outputs.items()},
                         fake=to_uint8(outputs["A2B"][:1000]))  # fmt: skip
        row["eval_seconds"] = time.perf_counter() - t0
        if notes:
            row["note"] = "; ".join(dict.fromkeys(notes))
        return row
