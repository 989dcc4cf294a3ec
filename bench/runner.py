"""The one training loop: every variant gets identical data, evaluation, timing and logging.

A cell is one (variant entry, dataset, seed). Cells run in spawned worker processes, each bound to
one device: on CPU with a fixed number of torch threads each, on CUDA `train.workers` per GPU on
cuda:0..N-1 (bench/cluster.py runs them as Ray tasks instead). Workers report through
`emit(kind, payload)`: "progress" (steps done), "rows" (result rows), "done".
"""

from __future__ import annotations

import dataclasses
import io
import math
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from bench import checkpoint, memory
from bench.config import Suite
from bench.io import atomic_write, atomic_write_bytes
from bench.metrics.images import default_cache_dir
from bench.registry import DATASETS, TASKS, VARIANTS, load_all
from bench.seeding import seed_everything, stream
from bench.tasks import EvalContext, Evaluation
from bench.variant import Variant

Emit = Callable[[str, Any], None]
ShouldStop = Callable[[int, dict[str, Any]], bool]  # (step, evaluation row) → end the cell now?


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
    checkpoint_every: int = 0  # generator steps between checkpoints; 0 = at every evaluation
    resume: bool = False  # continue from the cell's checkpoint, if it has one
    progress_every: int = 1
    cache_dir: str = ""  # backbones and real-image features (default: results/cache)
    task: str = "generation"  # what the cell's data and evaluation are (bench/tasks)


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
            cell_dir=str(run_dir.resolve() / "cells" / cell.cell_id),  # absolute: nodes share it
            checkpoint_every=spec.checkpoint.every,
            progress_every=max(1, spec.budget.gen_steps // 50),
            cache_dir=str(default_cache_dir().resolve()),
            task=spec.task,
        )
        for cell in suite.cells()
    ]


def checkpoint_steps(job: CellJob) -> set[int]:
    if job.checkpoint_every == 0:
        steps = set(eval_steps(job.gen_steps, job.eval["every"], at_start=False))
    else:
        steps = set(range(job.checkpoint_every, job.gen_steps + 1, job.checkpoint_every))
    return steps | {job.gen_steps}


def eval_steps(gen_steps: int, every: int, at_start: bool) -> list[int]:
    steps = list(range(every, gen_steps + 1, every))
    if not steps or steps[-1] != gen_steps:
        steps.append(gen_steps)
    return ([0] if at_start else []) + steps


# --- One cell ------------------------------------------------------------------------------------


@dataclass
class CellState:
    """Everything training changes in a cell, written down once: a checkpoint saves exactly this,
    and a resume loads it over a cell rebuilt from its seed."""

    variant: Variant
    data_gen: torch.Generator
    evaluation: Evaluation
    step: int = 0
    images_seen: int = 0
    train_seconds: float = 0.0
    loss_sums: dict[str, float] = field(default_factory=dict)  # training losses since the last row
    # Steps that reported each loss since the last row: a variant may report a loss only in some
    # steps (SRGAN's critic loss only after its MSE pretraining), and its mean is over those.
    loss_counts: dict[str, int] = field(default_factory=dict)
    since_eval: int = 0  # generator steps since the last row
    rows: list[dict[str, Any]] = field(default_factory=list)

    COUNTERS: ClassVar[tuple[str, ...]] = (
        "step", "images_seen", "train_seconds", "loss_sums", "loss_counts", "since_eval", "rows",
    )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in self.COUNTERS},
            "variant": self.variant.state_dict(),
            "rng": checkpoint.rng_state({"data": self.data_gen}),
            "histograms": self.evaluation.histograms,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A checkpoint from before loss_counts existed: every loss was reported at every step.
        state.setdefault("loss_counts", dict.fromkeys(state["loss_sums"], state["since_eval"]))
        for name in self.COUNTERS:
            setattr(self, name, state[name])
        self.variant.load_state_dict(state["variant"])
        checkpoint.set_rng_state(state["rng"], {"data": self.data_gen})
        self.evaluation.histograms = state["histograms"]


def run_cell(job: CellJob, emit: Emit, should_stop: ShouldStop | None = None) -> str:
    """Train and evaluate one cell; emits rows as they are made. Returns the final status.

    `should_stop(step, row)`, when given, is asked after each evaluation past step 0 (a tuner
    reports the row and asks its pruner); True ends the cell there with status "stopped".
    """
    load_all()
    device = torch.device(job.device)
    cell_dir = Path(job.cell_dir)
    base = {"variant": job.label, "dataset": job.dataset, "seed": job.seed}
    cell: CellState | None = None
    try:
        # Seed everything, then build data, the variant and the task's evaluation in a fixed order.
        seed_everything(job.seed, device)
        mem_scope = memory.reset_peak(device)
        task = TASKS.get(job.task)()
        dataset = DATASETS.get(job.dataset)()
        cls = VARIANTS.get(job.variant)
        variant = cls(cls.Config.model_validate(job.config), dataset.spec, device)
        variant.set_budget(job.gen_steps)
        cache_dir = Path(job.cache_dir or default_cache_dir())
        task.prepare_variant(variant, dataset, cache_dir)
        data_gen, eval_gen = stream(job.seed, "data"), stream(job.seed, "eval")
        evaluate = task.evaluation(EvalContext(
            variant, dataset, device, eval_gen, job.eval, job.metrics, cache_dir, cell_dir,
            job.gen_steps,
        ))  # fmt: skip
        cell = CellState(variant, data_gen, evaluate)
        draw = task.batches(dataset, variant, job.batch_size, data_gen, device)
        schedule = set(eval_steps(job.gen_steps, job.eval["every"], job.eval["at_start"]))
        save_at = checkpoint_steps(job)
        ckpt_path = cell_dir / checkpoint.CHECKPOINT_NAME

        def save_checkpoint(finished: str | None) -> None:
            state = {"cell_id": job.cell_id, **cell.state_dict(), "finished": finished}
            checkpoint.save(ckpt_path, state)

        # Resume: everything above was rebuilt from the seed exactly as in a fresh start; now the
        # checkpoint overwrites the state that training has changed since.
        state = checkpoint.load(ckpt_path) if job.resume else None
        if state is not None:
            cell.load_state_dict(state)
            emit("progress", cell.step)

        def next_real() -> Any:
            cell.images_seen += job.batch_size
            return draw()

        def emit_row(status: str, extra: dict[str, Any]) -> None:
            seconds = cell.train_seconds
            row = {
                **base, "step": cell.step, "images_seen": cell.images_seen,
                "train_seconds": seconds, "status": status,
                "img_per_s": cell.images_seen / seconds if seconds else float("nan"),
                "gen_steps_per_s": cell.step / seconds if seconds else float("nan"),
                **extra,
                "peak_mem_mb": memory.peak_mb(device),
                "time": time.time(),  # when the row was made (also its timestamp in MLflow)
            }  # fmt: skip
            cell.rows.append(row)
            emit("rows", [row])

        # Train: the loop times training only; evaluation and logging are outside the clock.
        if 0 in schedule and state is None:
            emit_row("ok", evaluate(cell.step))
        status = "ok"
        interval_start = time.perf_counter()
        while cell.step < job.gen_steps:
            losses = variant.train_step(next_real)
            cell.step += 1
            cell.since_eval += 1
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                cell.train_seconds += _elapsed(interval_start, device)
                status = "diverged"
                emit_row(status, {"note": f"non-finite {', '.join(bad)} at step {cell.step}"})
                break
            for k, v in losses.items():
                cell.loss_sums[k] = cell.loss_sums.get(k, 0.0) + v
                cell.loss_counts[k] = cell.loss_counts.get(k, 0) + 1
            if cell.step % job.progress_every == 0:
                emit("progress", job.progress_every)
            if cell.step in schedule or cell.step in save_at:
                cell.train_seconds += _elapsed(interval_start, device)
                if cell.step in schedule:
                    train_means = {k: v / cell.loss_counts[k] for k, v in cell.loss_sums.items()}
                    emit_row("ok", {**train_means, **evaluate(cell.step)})
                    cell.loss_sums, cell.loss_counts, cell.since_eval = {}, {}, 0
                    if should_stop is not None and should_stop(cell.step, cell.rows[-1]):
                        status = "stopped"
                        break
                if cell.step in save_at and cell.step < job.gen_steps:
                    save_checkpoint(finished=None)
                interval_start = time.perf_counter()

        # Keep what the cell made; the finished checkpoint, written last, marks the cell complete.
        _save_torch(cell_dir / "networks.pt", variant.networks())
        if hasattr(variant, "G"):  # the generator alone too, where there is one
            _save_torch(cell_dir / "generator.pt", variant.G.state_dict())
        _save_histograms(cell_dir / "weight_hist.npz", evaluate.histograms, mem_scope)
        save_checkpoint(finished=status)
        return status
    except OSError as exc:  # disk full, folder gone: stop cleanly; the last checkpoint stays usable
        note = f"{type(exc).__name__}: {exc}; the last checkpoint is kept for `bench resume`"
        return _fail(emit, base, cell, note)
    except Exception as exc:  # a bug in one cell must not stop the suite; it is recorded instead
        traceback.print_exc()
        return _fail(emit, base, cell, f"{type(exc).__name__}: {exc}")


def _fail(emit: Emit, base: dict, cell: CellState | None, note: str) -> str:
    """A failed row at the step the cell reached (step 0 when it failed while being built)."""
    counters = {"step": 0, "images_seen": 0, "train_seconds": 0.0}
    if cell is not None:
        counters = {k: getattr(cell, k) for k in counters}
    emit("rows", [{**base, **counters, "status": "failed", "note": note, "time": time.time()}])
    return "failed"


def lost_cell_row(job: CellJob, step: int, note: str) -> dict[str, Any]:
    """The failed row of a cell whose process was lost; what it did after `step` is lost too."""
    return {"variant": job.label, "dataset": job.dataset, "seed": job.seed, "step": step,
            "status": "failed", "note": note, "time": time.time()}  # fmt: skip


def set_threads(threads: int) -> None:
    """torch threads of this process (inter-op threads are set once per process, when still free)."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or work already ran in this process
        pass


def _elapsed(start: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _save_torch(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _save_histograms(
    path: Path, hists: list[tuple[int, torch.Tensor, torch.Tensor]], scope: str
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
#
# Each worker has its own pipe to the main process, which hands it one job at a time. Nothing is
# shared between workers (no common queue and so no common lock), so a worker killed at any moment,
# even in the middle of a send, cannot block the others.

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker_devices(device: str, workers: int, gpus: int) -> list[str]:
    """The device of each local worker process: `workers` on the CPU, or `workers` per GPU."""
    if device == "cpu":
        return ["cpu"] * workers
    return [f"cuda:{i}" for i in range(gpus) for _ in range(workers)]


def _worker_main(conn: Connection, device: str, threads: int) -> None:
    """A worker process bound to `device`: runs the jobs it receives until it receives None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the main process
    set_threads(threads)
    while (job := conn.recv()) is not None:

        def emit(kind: str, payload: Any, cell_id: str = job.cell_id) -> None:
            conn.send((cell_id, kind, payload))

        emit("done", run_cell(dataclasses.replace(job, device=device), emit))


@dataclass
class _Worker:
    proc: Any
    conn: Connection | None
    cell: str | None = None  # the cell it is running


def run_jobs(
    jobs: list[CellJob], devices: list[str], threads: int, on_event: Callable[[str, str, Any], None]
) -> dict[str, str]:
    """Run every job on one worker process per entry of `devices` (see `worker_devices`);
    `on_event(cell_id, kind, payload)` sees progress, rows and "done" here.

    Returns the final status of every cell. A worker that dies (killed, out of memory) fails the
    cell it was running; the other workers carry on. On an interrupt the workers are terminated.
    """
    statuses: dict[str, str] = {}
    if not jobs:
        return statuses
    ctx = mp.get_context("spawn")
    pool: list[_Worker] = []
    saved_env = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: str(threads) for k in THREAD_VARS})  # inherited by the spawned workers
    try:
        for device in devices[: len(jobs)]:
            here, there = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker_main, args=(there, device, threads))
            proc.start()
            there.close()  # so that the worker's death reads as end-of-file here
            pool.append(_Worker(proc, here))
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    by_id = {job.cell_id: job for job in jobs}
    queue = list(jobs)
    progress: dict[str, int] = {}  # generator steps each cell has reported done
    row_step: dict[str, int] = {}  # step of each cell's latest result row

    def fail(cell: str, reason: str) -> None:
        # The step is the last one reported; what the cell did after that is lost.
        step = max(progress.get(cell, 0), row_step.get(cell, 0))
        on_event(cell, "rows", [lost_cell_row(by_id[cell], step, reason)])
        on_event(cell, "done", "failed")
        statuses[cell] = "failed"

    def hand_out(worker: _Worker) -> None:
        job = queue.pop(0) if queue else None
        worker.cell = job.cell_id if job else None
        try:
            worker.conn.send(job)
        except OSError:
            pass  # it died; its end-of-file is handled below

    try:
        for worker in pool:
            hand_out(worker)
        while len(statuses) < len(jobs):
            alive = [w for w in pool if w.conn is not None]
            if not alive:  # every worker died: nothing is left to run the remaining cells
                for cell in [w.cell for w in pool if w.cell] + [j.cell_id for j in queue]:
                    if cell not in statuses:
                        fail(cell, "no worker process left to run this cell")
                break
            for conn in wait([w.conn for w in alive], timeout=0.5):
                worker = next(w for w in alive if w.conn is conn)
                try:
                    cell, kind, payload = conn.recv()
                except (EOFError, OSError):
                    conn.close()
                    worker.conn = None
                    if worker.cell and worker.cell not in statuses:
                        fail(worker.cell, "worker process died while running this cell "
                                          "(killed or out of memory?)")  # fmt: skip
                    continue
                if kind == "progress":
                    progress[cell] = progress.get(cell, 0) + payload
                elif kind == "rows":
                    row_step[cell] = max(r["step"] for r in payload)
                on_event(cell, kind, payload)
                if kind == "done":
                    statuses[cell] = payload
                    hand_out(worker)
    finally:
        for worker in pool:
            if worker.proc.is_alive():
                worker.proc.terminate()
        for worker in pool:
            worker.proc.join()
    return statuses
