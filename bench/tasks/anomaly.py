"""Anomaly detection with a model of normal data (AnoGAN, Schlegl et al., IPMI 2017; f-AnoGAN,
Schlegl et al., MedIA 2019): train on normal images only, then score held-out images.

A cell draws training batches from the normal class(es) of its dataset (bench/datasets/anomaly.py)
and never sees a test image. At each evaluation the variant scores a fixed set of held-out images
(`eval.num_samples`, the same for every cell and seed), higher meaning more anomalous, in chunks of
`eval.batch_size`; the anomaly metrics (AUROC, average precision) rank those scores against the
images' true status. A score may involve a search (AnoGAN optimises a latent per image): its random
start comes from a seed drawn once per cell from the eval stream, so every evaluation of a cell
starts from the same latents, and the seconds it took per image are the row's `score_s_per_image`.
The final evaluation saves every score (`scores.npz`) and a grid of the most and least anomalous
test images by the model's judgement.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from bench.datasets.images import to_float, to_uint8
from bench.io import atomic_write
from bench.metrics.anomaly import ScoreMetric
from bench.metrics.base import NotApplicable
from bench.registry import METRICS, TASKS
from bench.tasks.base import EvalContext, Evaluation, Task, evaluation_mode, save_grid

GRID_IMAGES = 16  # most and least anomalous test images shown at the final evaluation


@TASKS.register("anomaly_detection")
class AnomalyDetection(Task):
    name = "anomaly_detection"
    description = "train on normal images only; score held-out normal and anomalous images"
    needs = "scores_anomalies"
    data_kind = "anomaly"

    def batches(self, dataset, variant, batch_size, generator, device):  # noqa: ANN001, ANN201
        def next_real() -> torch.Tensor:
            return dataset.sample(batch_size, generator).to(device)

        return next_real

    def evaluation(self, ctx: EvalContext) -> Evaluation:
        return AnomalyEval(ctx)


class AnomalyEval(Evaluation):
    """The variant's anomaly scores of fixed held-out images, and the metrics of those scores."""

    def __init__(self, ctx: EvalContext) -> None:
        super().__init__()
        self.ctx = ctx
        scored = ctx.dataset.scored_set(ctx.eval_cfg["num_samples"])  # type: ignore[attr-defined]
        self.images = to_float(scored.images).to(ctx.device)
        self.labels, self.anomalous = scored.labels, scored.anomalous.numpy()
        # One seed for the scores' random starts (AnoGAN's initial latents), fixed per cell.
        self.score_seed = int(torch.randint(2**62, (1,), generator=ctx.generator))
        self.metrics: list[ScoreMetric] = [METRICS.get(m) for m in ctx.metrics]

    def scores(self) -> torch.Tensor:
        """The variant's score of every test image, float64 on the CPU."""
        variant, n = self.ctx.variant, self.ctx.eval_cfg["batch_size"]
        start = torch.Generator().manual_seed(self.score_seed)
        with evaluation_mode(variant, self.ctx.eval_cfg["batch_norm"]):
            return torch.cat([variant.anomaly_scores(x, start).detach().double().cpu()
                              for x in self.images.split(n)])  # fmt: skip

    def __call__(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        scores = self.scores()
        row: dict[str, Any] = {"score_s_per_image": (time.perf_counter() - t0) / len(scores)}
        notes: list[str] = []
        for metric in self.metrics:
            try:
                row[metric.name] = metric.of_scores(self.anomalous, scores.numpy())
            except NotApplicable as exc:
                row[metric.name] = float("nan")
                notes.append(f"{metric.name}: {exc}")
        if step == self.ctx.gen_steps:
            self._save(scores)
        row["eval_seconds"] = time.perf_counter() - t0
        if notes:
            row["note"] = "; ".join(dict.fromkeys(notes))
        return row

    def _save(self, scores: torch.Tensor) -> None:
        """Every score with its image's label and status; a grid of the test images the model
        finds most anomalous (top rows) and most normal (bottom rows)."""
        cell_dir = self.ctx.cell_dir
        atomic_write(cell_dir / "scores.npz", lambda f: np.savez(
            f, scores=scores.numpy(), labels=self.labels.numpy(), anomalous=self.anomalous))  # fmt: skip
        order = torch.argsort(scores, descending=True, stable=True)
        k = min(GRID_IMAGES, len(order) // 2)
        picked = torch.cat([order[:k], order[len(order) - k :]])
        save_grid(cell_dir / "grids" / "most_and_least_anomalous.png",
                  to_uint8(self.images[picked].cpu()), 8)  # fmt: skip
