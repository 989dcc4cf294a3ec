"""Multi-track music generation (MuseGAN, Dong et al., AAAI 2018): noise → a phrase of piano rolls.

A cell draws training phrases in {-1, 1}. At each evaluation the model generates phrases from latents
fixed per seed; its tanh output becomes a binary roll by `eval.binarize` ("threshold" at 0, or
"bernoulli" with p = (x + 1) / 2 from a seed fixed per cell), and the music metrics
(bench/metrics/music.py) compare them with fixed training phrases (`eval.num_real`, else as many as
are generated). Each evaluation saves a piano-roll picture of the first phrases; the last one also
saves MIDI files of the first phrases (`midi/`), samples.npz, and `music_reference.json`: the same
metrics of the training phrases themselves and of held-out chorales (the data rows of the summary).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch

from bench.io import atomic_write_text
from bench.metrics.music import MusicMetric, columns_of, music_columns, music_stats
from bench.music_io import save_roll_image, write_midi
from bench.registry import METRICS, TASKS
from bench.tasks.base import (
    EvalContext,
    Evaluation,
    Task,
    critic_columns,
    leaving_no_trace,
    save_samples,
)

IMAGE_PHRASES = 8  # phrases drawn in each evaluation's piano-roll picture
MIDI_PHRASES = 4  # phrases written as MIDI files at the final evaluation
SAVED_PHRASES = 100  # phrases kept in samples.npz


@TASKS.register("music")
class MusicGeneration(Task):
    name = "music"
    description = "noise → a multi-track phrase of binary piano rolls"
    needs = "samples"
    data_kind = "music"

    def batches(self, dataset, variant, batch_size, generator, device):  # noqa: ANN001, ANN201
        def next_real() -> torch.Tensor:
            return dataset.sample(batch_size, generator).to(device)

        return next_real

    def evaluation(self, ctx: EvalContext) -> Evaluation:
        return MusicEval(ctx)

    def result_columns(self, metrics: list[str], backbones: list[str], dataset: str) -> list[str]:
        from bench.datasets.music import TRACKS

        return [c for m in metrics for c in columns_of(m, TRACKS)]


def binarize(x: torch.Tensor, how: str, generator: torch.Generator) -> np.ndarray:
    """A tanh output in [-1, 1] as a bool piano roll: above 0, or Bernoulli((x + 1) / 2)."""
    if how == "threshold":
        return (x > 0).numpy()
    p = ((x.double() + 1) / 2).clamp(0, 1)
    return (torch.rand(p.shape, generator=generator, dtype=torch.float64) < p).numpy()


class MusicEval(Evaluation):
    """Phrases from fixed latents, binarised and measured against fixed training phrases."""

    def __init__(self, ctx: EvalContext) -> None:
        super().__init__()
        self.ctx = ctx
        cfg, dataset, gen = ctx.eval_cfg, ctx.dataset, ctx.generator
        n_eval = cfg["num_samples"]
        # The evaluation inputs, drawn in this order from the cell's eval stream.
        self.real = dataset.sample(min(n_eval, cfg["diag_samples"]), gen).to(ctx.device)
        self.z = torch.randn(n_eval, ctx.variant.z_dim, generator=gen).to(ctx.device)
        self.sample_seed = int(torch.randint(2**62, (1,), generator=gen))
        self.metrics = [m for m in ctx.metrics if isinstance(METRICS.get(m), MusicMetric)]
        self.tracks = dataset.tracks
        self.lowest = dataset.grid.lowest_midi
        self.train_rolls = dataset.reference("train", cfg["num_real"] or n_eval).numpy()
        self.reference = self._stats(self.train_rolls)

    def _stats(self, rolls: np.ndarray):  # noqa: ANN202
        return music_stats(rolls, self.tracks, self.ctx.eval_cfg["qn_min_steps"], self.lowest)

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
        ctx, variant = self.ctx, self.ctx.variant
        n = ctx.eval_cfg["batch_size"]
        with torch.no_grad():
            fake = torch.cat([variant.generate(z) for z in self.z.split(n)])
        rolls = binarize(fake.cpu(), ctx.eval_cfg["binarize"],
                         torch.Generator().manual_seed(self.sample_seed))  # fmt: skip
        row: dict[str, Any] = {"sample_s_per_phrase": (time.perf_counter() - t0) / len(fake)}

        # Music metrics of the binarised phrases, and their distance to the training phrases'.
        row["note_density"] = float(rolls.mean())
        metric_row, notes = music_columns(self.metrics, self._stats(rolls), self.reference,
                                          self.tracks)  # fmt: skip
        row.update(metric_row)

        # The critic's loss on real phrases and on (unbinarised) generated ones.
        if "critic" in variant.capabilities:
            with torch.no_grad():
                real_out = torch.cat([variant.critic(x) for x in self.real.split(n)])
                fake_out = torch.cat([variant.critic(x) for x in fake[: len(self.real)].split(n)])
            row.update(critic_columns(variant, real_out, fake_out, ctx.eval_cfg["hist_bins"],
                                      step, self.histograms))  # fmt: skip

        # Pictures at every evaluation; MIDI, samples and the data's own metrics at the last.
        save_roll_image(ctx.cell_dir / "grids" / f"step_{step:07d}.png", rolls[:IMAGE_PHRASES])
        if step == ctx.gen_steps:
            self._save_final(rolls)
        row["eval_seconds"] = time.perf_counter() - t0
        if notes:
            row["note"] = "; ".join(dict.fromkeys(notes))
        return row

    def _save_final(self, rolls: np.ndarray) -> None:
        cell_dir, dataset = self.ctx.cell_dir, self.ctx.dataset
        for i in range(min(MIDI_PHRASES, len(rolls))):
            write_midi(cell_dir / "midi" / f"phrase_{i:02d}.mid", rolls[i])
        save_samples(cell_dir, real=torch.from_numpy(self.train_rolls[:SAVED_PHRASES]),
                     fake=torch.from_numpy(rolls[:SAVED_PHRASES]))  # fmt: skip
        held_out = dataset.reference("held_out", len(self.train_rolls)).numpy()
        data_rows = {}
        for name, data in (("training data", self.train_rolls), ("held-out chorales", held_out)):
            stats = self._stats(data)
            data_row, _ = music_columns(self.metrics, stats, self.reference, self.tracks)
            data_rows[name] = {"phrases": len(data), **data_row,
                               "note_density": float(data.mean())}  # fmt: skip
        text = json.dumps({"dataset": dataset.describe(), "rows": data_rows}, indent=1,
                          allow_nan=True)  # fmt: skip
        atomic_write_text(cell_dir / "music_reference.json", text)
