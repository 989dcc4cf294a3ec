"""The one training loop: every variant gets identical data, evaluation, timing and logging.

A cell is one (variant entry, dataset, seed). On CPU cells run in spawned worker processes with a
fixed number of torch threads each; on CUDA they run one after another in this process. Workers
report through `emit(kind, payload)`: "progress" (steps done), "rows" (result rows), "done".
"""

from __future__ import annotations

import io
import math
import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import diagnostics, memory
from bench.config import Suite
from bench.io import atomic_write, atomic_write_bytes
from bench.metrics import NotApplicable
from bench.registry import DATASETS, METRICS, VARIANTS, load_all
from bench.seeding import seed_everything, stream

Emit = Callable[[str, Any], None]
EVAL_CHUNK = 4096  # generated samples per forward pass during evaluation


@dataclass(frozen=True)
class CellJob:
    """Everything a worker needs to train and evaluate one cell (plain data, so it pickles)."""

    cell_id: str
    label: str
    variant: str
    config: dict[str, Any]
    dataset: str
    seed: int
    gen_steps: int
    batch_size: int
    eval: dict[str, Any]
    metrics: list[str]
    device: str
    cell_dir: str
    progress_every: int = field(default=1)


def jobs_for(suite: Suite, run_dir: Path, device: str) -> list[CellJob]:
    spec = suite.spec
    return [
        CellJob(
            cell_id=cell.cell_id,
            label=cell.entry.label,
            variant=cell.entry.variant,
            config=cell.entry.config.model_dump(),
            dataset=cell.dataset,
            seed=cell.seed,
            gen_steps=spec.budget.gen_steps,
            batch_size=spec.train.batch_size,
            eval=spec.eval.model_dump(),
            metrics=list(spec.metrics),
            device=device,
            cell_dir=str(run_dir / "cells" / cell.cell_id),
            progress_every=max(1, spec.budget.gen_steps // 50),
        )
        for cell in suite.cells()
    ]


def eval_steps(gen_steps: int, every: int, at_start: bool) -> list[int]:
    steps = list(range(every, gen_steps + 1, every))
    if not steps or steps[-1] != gen_steps:
        steps.append(gen_steps)
    return ([0] if at_start else []) + steps


# --- One cell ------------------------------------------------------------------------------------


def run_cell(job: CellJob, emit: Emit) -> str:
    """Train and evaluate one cell; emits rows as they are made. Returns the final status."""
    load_all()
    device = torch.device(job.device)
    cell_dir = Path(job.cell_dir)
    base = {"variant": job.label, "dataset": job.dataset, "seed": job.seed}
    step, images_seen, train_seconds = 0, 0, 0.0
    try:
        # Seed everything, then build data, evaluation inputs and the variant in a fixed order.
        seed_everything(job.seed, device)
        mem_scope = memory.reset_peak(device)
        dataset = DATASETS.get(job.dataset)()
        cls = VARIANTS.get(job.variant)
        variant = cls(cls.Config.model_validate(job.config), dataset.dim, device)
        data_gen, eval_gen = stream(job.seed, "data"), stream(job.seed, "eval")
        eval_cfg = job.eval
        eval_real = dataset.sample(eval_cfg["num_samples"], eval_gen).to(device)
        eval_z = torch.randn(eval_cfg["num_samples"], variant.z_dim, generator=eval_gen).to(device)
        n_diag = min(eval_cfg["diag_samples"], eval_cfg["num_samples"])
        metrics = [METRICS.get(name) for name in job.metrics]
        schedule = set(eval_steps(job.gen_steps, eval_cfg["every"], eval_cfg["at_start"]))
        histograms: list[tuple[int, np.ndarray, np.ndarray]] = []

        def next_real() -> torch.Tensor:
            nonlocal images_seen
            images_seen += job.batch_size
            return dataset.sample(job.batch_size, data_gen).to(device)

        def evaluate() -> dict[str, Any]:
            t0 = time.perf_counter()
            row: dict[str, Any] = {}
            notes: list[str] = []
            fake = torch.cat([variant.generate(z) for z in eval_z.split(EVAL_CHUNK)])
            real_cpu, fake_cpu = eval_real.cpu(), fake.cpu()

            # Sample-quality metrics; one that cannot be computed stays empty with its reason noted.
            for metric in metrics:
                try:
                    row[metric.name] = metric(real_cpu, fake_cpu, dataset)
                except NotApplicable as exc:
                    row[metric.name] = float("nan")
                    notes.append(f"{metric.name}: {exc}")

            # Critic diagnostics: its loss on the evaluation batch, weight pile-up, gradient by depth.
            with torch.no_grad():
                real_out = torch.cat([variant.D(x) for x in eval_real.split(EVAL_CHUNK)])
                fake_out = torch.cat([variant.D(x) for x in fake.split(EVAL_CHUNK)])
                critic_loss = float(variant.critic_loss(real_out, fake_out))
            row["critic_loss"] = critic_loss
            if cls.estimates_wasserstein:
                row["wasserstein_estimate"] = -critic_loss
            row["clip_saturation"] = diagnostics.clip_saturation(variant.D)
            norms = diagnostics.activation_grad_norms(
                variant.D, variant.critic_loss, eval_real[:n_diag], fake[:n_diag]
            )
            for i, norm in enumerate(norms, start=1):
                row[f"act_grad_norm/{i:02d}"] = norm
            row["act_grad_log10_slope"] = diagnostics.log10_slope(norms)
            counts, edges = diagnostics.weight_histogram(variant.D, eval_cfg["hist_bins"])
            histograms.append((step, counts, edges))
            if step == job.gen_steps:
                _save_samples(cell_dir, real_cpu, fake_cpu)
            row["eval_seconds"] = time.perf_counter() - t0
            if notes:
                row["note"] = "; ".join(dict.fromkeys(notes))
            return row

        def emit_row(status: str, extra: dict[str, Any]) -> None:
            row = {
                **base,
                "step": step,
                "images_seen": images_seen,
                "train_seconds": train_seconds,
                "status": status,
                "img_per_s": images_seen / train_seconds if train_seconds else float("nan"),
                "gen_steps_per_s": step / train_seconds if train_seconds else float("nan"),
                **extra,
                "peak_mem_mb": memory.peak_mb(device),
            }
            emit("rows", [row])

        # Train: the loop times training only; evaluation and logging are outside the clock.
        if 0 in schedule:
            emit_row("ok", evaluate())
        loss_sums: dict[str, float] = {}
        since_eval = 0
        status = "ok"
        interval_start = time.perf_counter()
        while step < job.gen_steps:
            losses = variant.train_step(next_real)
            step += 1
            since_eval += 1
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                train_seconds += _elapsed(interval_start, device)
                status = "diverged"
                emit_row(status, {"note": f"non-finite {', '.join(bad)} at step {step}"})
                break
            for k, v in losses.items():
                loss_sums[k] = loss_sums.get(k, 0.0) + v
            if step % job.progress_every == 0:
                emit("progress", job.progress_every)
            if step in schedule:
                train_seconds += _elapsed(interval_start, device)
                train_means = {k: v / since_eval for k, v in loss_sums.items()}
                emit_row("ok", {**train_means, **evaluate()})
                loss_sums, since_eval = {}, 0
                interval_start = time.perf_counter()

        # Keep what the cell made: final generator weights and the critic weight histograms.
        _save_torch(cell_dir / "generator.pt", variant.G.state_dict())
        _save_histograms(cell_dir / "weight_hist.npz", histograms, mem_scope)
        return status
    except Exception as exc:  # a bug in one cell must not stop the suite; it is recorded instead
        traceback.print_exc()
        emit("rows", [{**base, "step": step, "images_seen": images_seen,
                       "train_seconds": train_seconds, "status": "failed",
                       "note": f"{type(exc).__name__}: {exc}"}])  # fmt: skip
        return "failed"


def _elapsed(start: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _save_torch(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _save_samples(cell_dir: Path, real: torch.Tensor, fake: torch.Tensor) -> None:
    atomic_write(
        cell_dir / "samples.npz", lambda f: np.savez(f, real=real.numpy(), fake=fake.numpy())
    )


def _save_histograms(
    path: Path, hists: list[tuple[int, np.ndarray, np.ndarray]], scope: str
) -> None:
    if not hists:
        return
    atomic_write(
        path,
        lambda f: np.savez(
            f,
            steps=np.array([h[0] for h in hists]),
            counts=np.stack([h[1] for h in hists]),
            edges=np.stack([h[2] for h in hists]),
            peak_mem_scope=np.array(scope),
        ),
    )


# --- Many cells ----------------------------------------------------------------------------------

_events: Any = None


def _worker_init(events: Any, threads: int) -> None:
    global _events
    _events = events
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def _worker_run(job: CellJob) -> str:
    def emit(kind: str, payload: Any) -> None:
        _events.put((job.cell_id, kind, payload))

    status = run_cell(job, emit)
    emit("done", status)
    return status


def run_jobs(
    jobs: list[CellJob], workers: int, threads: int, on_event: Callable[[str, str, Any], None]
) -> dict[str, str]:
    """Run every job; `on_event(cell_id, kind, payload)` sees progress and rows in the main process.

    Returns the final status of every cell.
    """
    statuses: dict[str, str] = {}
    if not jobs:
        return statuses
    if jobs[0].device.startswith("cuda"):
        for job in jobs:  # one GPU: cells one after another, in this process
            statuses[job.cell_id] = run_cell(job, lambda k, p, c=job.cell_id: on_event(c, k, p))
            on_event(job.cell_id, "done", statuses[job.cell_id])
        return statuses

    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    saved_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(events, threads),
        ) as pool:
            futures: dict[Future, CellJob] = {pool.submit(_worker_run, job): job for job in jobs}
            while len(statuses) < len(jobs):
                try:
                    cell_id, kind, payload = events.get(timeout=0.5)
                except queue.Empty:
                    _collect_crashes(futures, statuses, on_event)
                    continue
                on_event(cell_id, kind, payload)
                if kind == "done":
                    statuses[cell_id] = payload
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return statuses


def _collect_crashes(
    futures: dict[Future, CellJob], statuses: dict[str, str], on_event: Callable[..., None]
) -> None:
    """A worker that died (killed, out of memory) fails its cell; the others carry on."""
    for fut, job in futures.items():
        if job.cell_id in statuses or not fut.done() or fut.exception() is None:
            continue
        exc = fut.exception()
        row = {"variant": job.label, "dataset": job.dataset, "seed": job.seed, "step": 0,
               "images_seen": 0, "train_seconds": 0.0, "status": "failed",
               "note": f"worker process died: {type(exc).__name__}: {exc}"}  # fmt: skip
        on_event(job.cell_id, "rows", [row])
        on_event(job.cell_id, "done", "failed")
        statuses[job.cell_id] = "failed"
