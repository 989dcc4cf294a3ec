"""Cells as Ray tasks (train.executor = "ray"): one suite's grid spread over a cluster.

Each cell is one Ray task asking for `train.cpus_per_cell` CPUs and `train.gpus_per_cell` GPUs. It
runs the same `run_cell` as a local worker, in the same cell folder, so its numbers are the same;
its progress and rows come back through one queue actor to this process, which writes the results
table, the summary and MLflow exactly as a local run does. Cell folders and the cache must be on
storage every node reaches at the same path.

A task whose worker or node dies is started again from the cell's last checkpoint, at most
`train.retries` times; the rows the lost attempt made after that checkpoint are dropped, and every
attempt is listed in the cell's `attempts.json`. An error raised by the cell's own code is not
retried: it would fail the same way again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import checkpoint
from bench.errors import UsageError
from bench.io import atomic_write_json
from bench.runner import CellJob, lost_cell_row, run_cell, set_threads

INSTALL_HINT = "pip install 'gan-bench[ray]'"
# Settings a cell reads from the environment, handed to every task: workers started by `ray start`
# elsewhere neither inherit this process's environment nor share its working folder.
FORWARDED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MLFLOW_TRACKING_URI")
POLL_SECONDS = 0.5
ATTEMPTS_NAME = "attempts.json"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "train.executor=ray needs Ray, an optional extra of gan-bench: "
            f"{INSTALL_HINT} (or leave train.executor=local)"
        ) from None
    return ray


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The Ray cluster this process is connected to, and what a cell asks of it."""

    address: str  # as configured ("" = a private Ray started for this process)
    device: str  # "cpu" or "cuda", resolved against the cluster's resources
    cpus_per_cell: float
    gpus_per_cell: float
    resources: dict[str, float]  # the cluster's totals when this process connected

    def describe(self) -> dict[str, Any]:
        """The executor entry of env.json."""
        ray = import_ray()
        return {"kind": "ray", "address": self.address or "private (started for this run)",
                "ray": ray.__version__, "cpus_per_cell": self.cpus_per_cell,
                "gpus_per_cell": self.gpus_per_cell,
                "cluster": {k: v for k, v in self.resources.items() if k in ("CPU", "GPU")},
                "nodes": len([n for n in ray.nodes() if n["Alive"]])}  # fmt: skip


def connect(
    address: str, device: str, cpus_per_cell: float, gpus_per_cell: float | None
) -> Cluster:
    """Join (or start) the Ray cluster and check that a cell fits on one of its nodes."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, include_dashboard=False)
            else:
                ray.init(include_dashboard=False)
        except Exception as exc:  # no cluster at the address, version mismatch, refused
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise UsageError(
                f"ray.address={address!r}: cannot connect to a Ray cluster ({first}); start one "
                "with `ray start --head` (see README: Running on a cluster) or leave ray.address "
                "empty for a private Ray on this machine"
            ) from None
    resources = ray.cluster_resources()
    gpus_there = resources.get("GPU", 0) > 0
    if device == "auto":
        device = "cuda" if gpus_there else "cpu"
    if device == "cuda" and not gpus_there:
        raise UsageError("train.device=cuda but the Ray cluster has no GPU; use device=auto or cpu")
    gpus = (1.0 if device == "cuda" else 0.0) if gpus_per_cell is None else gpus_per_cell
    if device == "cuda" and gpus == 0:
        raise UsageError(
            "train.gpus_per_cell=0 with device cuda: Ray would give the cell no GPU; ask for a "
            "fraction (e.g. 0.25) to share one"
        )
    if device == "cpu" and gpus > 0:
        raise UsageError(f"train.gpus_per_cell={gpus} needs train.device=cuda (or auto with GPUs)")
    fits = [
        n
        for n in ray.nodes()
        if n["Alive"]
        and n["Resources"].get("CPU", 0) >= cpus_per_cell
        and n["Resources"].get("GPU", 0) >= gpus
    ]
    if not fits:
        raise UsageError(
            f"no node of the Ray cluster has {cpus_per_cell:g} CPU and {gpus:g} GPU for a cell "
            f"(the cluster has {resources.get('CPU', 0):g} CPU and {resources.get('GPU', 0):g} GPU "
            "in all); lower train.cpus_per_cell / train.gpus_per_cell or add nodes"
        )
    return Cluster(address, device, cpus_per_cell, gpus, resources)


def task_env() -> dict[str, str]:
    """The environment a task needs, paths absolute: the data root, the cache, tracking, threads."""
    from bench.datasets.images import data_root
    from bench.metrics.images import default_cache_dir

    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    return {**env, "GAN_BENCH_DATA": str(data_root()), "GAN_BENCH_CACHE": str(default_cache_dir())}


def _cell_task(job: CellJob, threads: int, env: dict[str, str], events: Any, attempt: int) -> str:
    """One cell in a Ray worker; every event carries the attempt, so a lost attempt's late ones
    can be told apart."""
    import ray

    os.environ.update(env)
    set_threads(threads)
    if job.device == "cuda":
        job = dataclasses.replace(job, device="cuda:0")  # the GPU Ray gave this task
    events.put((job.cell_id, attempt, "started", ray.get_runtime_context().get_node_id()))

    def emit(kind: str, payload: Any) -> None:
        events.put((job.cell_id, attempt, kind, payload))

    return run_cell(job, emit)


def run_jobs_ray(
    jobs: list[CellJob],
    cluster: Cluster,
    threads: int,
    max_in_flight: int,
    retries: int,
    on_event: Callable[[str, str, Any], None],
) -> dict[str, str]:
    """Run every job as a Ray task; `on_event` sees what `runner.run_jobs` shows, and "restart"
    (payload: the rows of the checkpoint a lost cell starts again from)."""
    ray = import_ray()
    from ray.util.queue import Empty, Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    statuses: dict[str, str] = {}
    if not jobs:
        return statuses
    # The queue lives on this process's node: a node that dies takes only its cells with it.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
    task = ray.remote(_cell_task).options(
        num_cpus=cluster.cpus_per_cell, num_gpus=cluster.gpus_per_cell, max_retries=0
    )
    env = task_env()
    by_id = {job.cell_id: job for job in jobs}
    todo = list(jobs)
    running: dict[Any, CellJob] = {}
    # Every attempt at each cell, those of earlier drivers of the run folder included.
    attempts = {job.cell_id: _read_attempts(Path(job.cell_dir)) for job in jobs}
    first_here = {cell: len(tries) for cell, tries in attempts.items()}
    reached: dict[str, int] = {}  # the step each cell's current attempt has reported
    node_names: dict[str, dict[str, str]] = {}

    def node(node_id: str) -> dict[str, str]:
        if node_id not in node_names:
            for n in ray.nodes():
                node_names[n["NodeID"]] = {"node_id": n["NodeID"], "ip": n["NodeManagerAddress"],
                                           "name": n.get("NodeName", "")}  # fmt: skip
        return node_names.get(node_id, {"node_id": node_id})

    def record(cell: str, **fields: Any) -> None:
        attempts[cell][-1].update(fields)
        atomic_write_json(Path(by_id[cell].cell_dir) / ATTEMPTS_NAME, attempts[cell])

    def submit(job: CellJob) -> None:
        state = (
            checkpoint.load(Path(job.cell_dir) / checkpoint.CHECKPOINT_NAME) if job.resume else None
        )
        attempts[job.cell_id].append({"attempt": len(attempts[job.cell_id]) + 1,
                                      "resumed_from_step": state["step"] if state else 0,
                                      "submitted": time.time()})  # fmt: skip
        reached[job.cell_id] = state["step"] if state else 0
        running[task.remote(job, threads, env, events, len(attempts[job.cell_id]))] = job

    def drain() -> None:
        try:
            batch = events.get_nowait_batch(events.qsize())
        except Empty:
            return
        for cell, attempt, kind, payload in batch:
            if attempt != len(attempts[cell]):
                continue  # from an attempt that was lost; its rows were dropped
            if kind == "started":
                record(cell, node=node(payload), started=time.time())
                continue
            if kind == "progress":
                reached[cell] += payload
            on_event(cell, kind, payload)

    def lost(job: CellJob, reason: str) -> None:
        """Start a lost cell again from its checkpoint, or record it failed once retries are spent."""
        cell = job.cell_id
        record(cell, ended=reason)
        state = checkpoint.load(Path(job.cell_dir) / checkpoint.CHECKPOINT_NAME)
        if state is not None and state["finished"]:  # it had finished before its worker went
            statuses[cell] = state["finished"]
            on_event(cell, "restart", state["rows"])
            on_event(cell, "done", state["finished"])
        elif len(attempts[cell]) - first_here[cell] <= retries:
            on_event(cell, "restart", state["rows"] if state else [])
            todo.insert(0, dataclasses.replace(job, resume=True))
        else:
            note = f"{reason} (gave up after {len(attempts[cell]) - first_here[cell]} attempts)"
            on_event(cell, "rows", [lost_cell_row(job, reached[cell], note)])
            on_event(cell, "done", "failed")
            statuses[cell] = "failed"

    try:
        while todo or running:
            while todo and (max_in_flight == 0 or len(running) < max_in_flight):
                submit(todo.pop(0))
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            drain()  # a finished task's events are all queued before its result is ready
            for ref in ready:
                job = running.pop(ref)
                try:
                    status = ray.get(ref)
                # The cell's code raised outside run_cell's own handling (an import on that
                # node, say): not retried, since it would fail the same way again.
                except ray.exceptions.RayTaskError as exc:
                    record(job.cell_id, ended=f"error: {_first_line(exc)}")
                    on_event(job.cell_id, "rows", [lost_cell_row(job, reached[job.cell_id],
                                                                 _first_line(exc))])  # fmt: skip
                    on_event(job.cell_id, "done", "failed")
                    statuses[job.cell_id] = "failed"
                except ray.exceptions.RayError as exc:  # worker or node died, out of memory
                    lost(job, f"{type(exc).__name__}: {_first_line(exc)}")
                else:
                    record(job.cell_id, ended=status)
                    statuses[job.cell_id] = status
                    on_event(job.cell_id, "done", status)
    finally:
        for ref in running:  # interrupted: nothing keeps training for a driver that is gone
            ray.cancel(ref, force=True)
        ray.kill(events.actor)
    return statuses


def _read_attempts(cell_dir: Path) -> list[dict[str, Any]]:
    path = cell_dir / ATTEMPTS_NAME
    return json.loads(path.read_text()) if path.is_file() else []


def _first_line(exc: BaseException) -> str:
    """The line that says what happened: a task error's own message is its last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return lines[-1] if isinstance(exc, import_ray().exceptions.RayTaskError) else lines[0]
