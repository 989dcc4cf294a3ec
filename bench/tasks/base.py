"""What a task is to the harness: the data a cell draws, how a model is asked for outputs at an
evaluation, and which metrics, datasets and variants fit it.

The runner owns the loop and the clock; a task gives it `batches` (the `next_real` a variant's
`train_step` calls) and an `Evaluation` (called at each evaluation step, returns the row's columns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from bench import diagnostics
from bench.datasets.base import Dataset
from bench.datasets.images import ImageDataset
from bench.io import atomic_write
from bench.metrics.base import Metric, NotApplicable
from bench.metrics.images import ImageEvaluator
from bench.variant import Variant


@dataclass
class EvalContext:
    """Everything a task's evaluation is built from, for one cell."""

    variant: Variant
    dataset: Dataset
    device: torch.device
    generator: torch.Generator  # the cell's "eval" stream: fixes the evaluation inputs
    eval_cfg: dict[str, Any]  # the suite's [eval] table
    metrics: list[str]
    cache_dir: Path
    cell_dir: Path
    gen_steps: int


class Evaluation:
    """One cell's evaluation: fixed inputs, metrics, critic diagnostics and saved pictures."""

    def __init__(self) -> None:
        # (step, counts, edges) of the critic's weight histogram at each evaluation; checkpointed.
        self.histograms: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def __call__(self, step: int) -> dict[str, Any]:
        raise NotImplementedError


class Task:
    """A kind of benchmark: subclasses set the class variables and build batches and evaluations."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs: ClassVar[str] = ""  # the capability every variant of the suite must declare
    data_kind: ClassVar[str] = ""  # the kind every dataset of the suite must be (Dataset.kind)

    def batches(
        self, dataset: Dataset, variant: Variant, batch_size: int, generator: torch.Generator,
        device: torch.device,
    ) -> Callable[[], Any]:  # fmt: skip
        """The `next_real` that the variant's `train_step` calls for each batch of real data."""
        raise NotImplementedError

    def evaluation(self, ctx: EvalContext) -> Evaluation:
        raise NotImplementedError

    def prepare_variant(self, variant: Variant, dataset: Dataset, cache_dir: Path) -> None:
        """Hand a freshly built variant what the task provides besides batches (SRGAN's content
        network); called before training or resuming, without drawing from the global generator."""

    def result_columns(self, metrics: list[str], backbones: list[str], dataset: str) -> list[str]:
        """The result columns `metrics` fill on the registered dataset `dataset`, known without
        building it: image metrics once per backbone, in backbone order."""
        from bench.backbones import column_name
        from bench.datasets.images import is_image_dataset
        from bench.metrics import produced_columns

        names = [column_name(kind, dataset) for kind in backbones]
        return produced_columns(metrics, names if is_image_dataset(dataset) else [])


# --- Pieces every task's evaluation uses ---------------------------------------------------------


def image_evaluator(
    ctx: EvalContext, dataset: ImageDataset, metrics: list[str], num_fake: int
) -> ImageEvaluator:
    """The suite's image metrics on `dataset` (a cell's data, or one domain of it), backbones
    resolved and reference features loaded; the reference holds `eval.num_real` images, else as
    many as the outputs scored (`num_fake`)."""
    cfg = ctx.eval_cfg
    evaluator = ImageEvaluator(
        dataset, metrics, cfg["backbones"], cfg["num_real"] or num_fake, ctx.cache_dir,
        ctx.device, cfg["reference_split"], cfg["kid_subsets"], cfg["inception_weights"],
    )  # fmt: skip
    evaluator.prepare()
    return evaluator


@contextmanager
def evaluation_mode(variant: Variant, batch_norm: str) -> Iterator[None]:
    """Every network of `variant` in the mode `eval.batch_norm` names ("batch": training mode;
    "running": eval mode, with dropout kept on for a variant that samples with it), and afterwards
    back in its own mode with its buffers (BatchNorm statistics) as they were."""
    nets = [m for m in vars(variant).values() if isinstance(m, torch.nn.Module)]
    buffers = [{k: v.clone() for k, v in m.state_dict().items()} for m in nets]
    modes = [[mod.training for mod in m.modules()] for m in nets]
    for m in nets:
        m.train(batch_norm == "batch")
        if batch_norm == "running" and variant.dropout_at_test:
            for mod in m.modules():
                if isinstance(mod, torch.nn.modules.dropout._DropoutNd):
                    mod.train()
    try:
        yield
    finally:
        for m, state, flags in zip(nets, buffers, modes, strict=True):
            m.load_state_dict(state)
            for mod, training in zip(m.modules(), flags, strict=True):
                mod.training = training


def leaving_no_trace(
    variant: Variant, device: torch.device, seed: int, batch_norm: str, fn: Callable[[], Any]
) -> Any:
    """`fn()` run in `evaluation_mode` so that training cannot tell it happened: the randomness it
    draws (dropout) comes from `seed` on a forked global generator."""
    with evaluation_mode(variant, batch_norm):
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            return fn()


def sample_metrics(
    metrics: list[Metric], real: torch.Tensor, fake: torch.Tensor, dataset: Dataset
) -> tuple[dict[str, Any], list[str]]:
    """Metrics of two sample sets; one that cannot be computed stays empty with its reason noted."""
    row: dict[str, Any] = {}
    notes: list[str] = []
    for metric in metrics:
        try:
            row[metric.name] = metric(real, fake, dataset)
        except NotApplicable as exc:
            row[metric.name] = float("nan")
            notes.append(f"{metric.name}: {exc}")
    return row, notes


def critic_columns(
    variant: Variant, real_out: torch.Tensor, fake_out: torch.Tensor, hist_bins: int, step: int,
    histograms: list[tuple[int, torch.Tensor, torch.Tensor]], name: str = "",
) -> dict[str, Any]:  # fmt: skip
    """A critic's loss on the evaluation batch, its weight pile-up, and its weight histogram.

    `name` is empty for a model with one critic, `D`, whose columns keep their plain names. A model
    with several names each (CycleGAN's `D_A`, `D_B`): its columns get the suffix `/<name>`, and
    weight histograms are kept only for a single critic."""
    critic = variant.critic_network(name.removeprefix("D_"))
    suffix = f"/{name}" if name else ""
    with torch.no_grad():
        critic_loss = float(variant.critic_loss(real_out, fake_out))
    row: dict[str, Any] = {f"critic_loss{suffix}": critic_loss}
    if variant.estimates_wasserstein:
        row[f"wasserstein_estimate{suffix}"] = -critic_loss
    row[f"clip_saturation{suffix}"] = diagnostics.clip_saturation(critic)
    if not name:
        counts, edges = diagnostics.weight_histogram(critic, hist_bins)
        histograms.append((step, torch.from_numpy(counts), torch.from_numpy(edges)))
    return row


def save_samples(cell_dir: Path, **arrays: torch.Tensor) -> None:
    """The final step's samples (e.g. real, fake; or source, fake, target) as samples.npz."""
    atomic_write(
        cell_dir / "samples.npz",
        lambda f: np.savez(f, **{k: v.numpy() for k, v in arrays.items()}),
    )


def save_grid(path: Path, images: torch.Tensor, ncols: int) -> None:
    """uint8 images [N, C, H, W] as one PNG grid, row by row."""
    from bench.report import image_grid, save_png

    save_png(path, image_grid(images.numpy(), ncols=ncols))
