"""`bench tune`: tune every entry with a search space, then optionally compare the best fairly."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from bench.cluster import Cluster, connect, import_ray, task_env
from bench.config import Suite, shown
from bench.env import placement
from bench.errors import UsageError
from bench.io import atomic_write_text
from bench.tracking import resolve_uri
from bench.tuning import fair
from bench.tuning.outputs import best_trial, write_best, write_plots
from bench.tuning.storage import TUNING_ROOT, default_url, open_storage
from bench.tuning.study import (
    Target,
    config_values,
    counts,
    open_study,
    run_trial,
    suggest,
    targets,
    work,
)
from bench.tuning.tracking import StudyTracker


def tuning_folder(suite: Suite, out: str | None) -> Path:
    """results/tuning/<suite>/ (<suite>-<profile>/ for another profile than the default), or out."""
    if out:
        return Path(out)
    name = suite.name if suite.profile == "default" else f"{suite.name}-{suite.profile}"
    return TUNING_ROOT / name


def tune(
    suite: Suite,
    trials: int | None = None,
    storage: str | None = None,
    only: list[str] | None = None,
    compare: int | None = None,
    out: str | None = None,
) -> int:
    """Run this worker's share of every study of the suite; 0 when each has its N trials."""
    tuned = targets(suite, only)
    tuning = suite.spec.tuning
    n_trials = trials or tuning.trials
    folder = tuning_folder(suite, out)
    # Trials run on the device a `bench run` of the suite would use: in this process one at a time,
    # or with train.executor = "ray" in `train.workers` Ray tasks, each a worker of the studies.
    cluster = _connect(suite)
    device = cluster.device if cluster else placement(suite)[0]
    storage = _shared_storage(storage) if cluster else storage
    store, store_name = open_storage(storage, tuning.heartbeat_seconds)
    studies = _open_studies(suite, tuned, store, store_name, n_trials, device)
    if cluster is None:
        _work_share(suite, studies, store, device)
    else:
        _work_on_ray(cluster, suite, only, n_trials, storage)

    # Every study is finished (nothing waiting or running): best parameters, plots, tracking.
    efforts: dict[str, dict[str, Any]] = {}
    best_files: list[Path] = []
    incomplete = []
    tracker = _tracker(suite)
    for target, study, parent in studies:
        n = counts(study)
        finished = n.get("COMPLETE", 0) + n.get("PRUNED", 0)
        best_path = write_best(target, study, folder)
        plots, notes = write_plots(target, study, folder)
        best = best_trial(study)
        effort = {**n, "finished": finished, "requested": study.user_attrs["trials"],
                  "notes": notes, "best_value": best.value if best else None,
                  "params": config_values(target, best.params) if best else {}}  # fmt: skip
        efforts[target.entry.label] = effort
        done = finished >= study.user_attrs["trials"]
        metrics = {f"trials_{k.lower()}": float(v) for k, v in n.items()}
        if best is not None:
            metrics["best_value"] = best.value
        files = plots + ([best_path] if best_path else [])
        tracker.finish_study(parent, files, metrics, done)
        if best_path:
            best_files.append(best_path)
        if not done:
            incomplete.append(target.study_name)
        print(f"bench: {target.study_name}: {finished}/{effort['requested']} trials "
              f"({n.get('COMPLETE', 0)} complete, {n.get('PRUNED', 0)} pruned, "
              f"{n.get('FAIL', 0)} failed); best "
              f"{'none' if best is None else f'{best.value:.4g} (trial {best.number})'}"
              + (f" → {shown(best_path)}" if best_path else ""), file=sys.stderr)  # fmt: skip
        for note in notes:
            print(f"bench: note: {note}", file=sys.stderr)
    if incomplete:
        print(f"bench: {', '.join(incomplete)} ended with fewer finished trials than requested "
              "(failed trials are not retried; see the FAIL trials' `note`)", file=sys.stderr)  # fmt: skip
        return 1
    if compare is None:
        return 0
    return _compare(tuned, efforts, folder, best_files, compare)


Opened = list[tuple[Target, optuna.Study, str | None]]  # each study with its parent MLflow run


def _tracker(suite: Suite) -> StudyTracker:
    tracking = suite.spec.tracking
    return StudyTracker(resolve_uri(tracking.uri) if tracking.enabled else None)


def _open_studies(
    suite: Suite, tuned: list[Target], store: BaseStorage, store_name: str, n_trials: int,
    device: str,
) -> Opened:  # fmt: skip
    """Create or join one study per entry; the parent MLflow run's id is kept in the study."""
    tracker = _tracker(suite)
    studies: Opened = []
    for target in tuned:
        study, created = open_study(target, store, n_trials)
        studies.append((target, study, tracker.study_run(target, study, store_name)))
        print(f"bench: study '{target.study_name}' in {store_name} "
              f"({'created' if created else 'joined'}; {study.user_attrs['trials']} trials, "
              f"{target.direction} {target.objective} on {target.dataset}, {device})",
              file=sys.stderr)  # fmt: skip
    return studies


def _work_share(suite: Suite, studies: Opened, store: BaseStorage, device: str) -> None:
    """Run trials of the studies in this process until none is waiting or running."""
    _one_thread_per_process(suite.spec.train.threads)
    tracker = _tracker(suite)
    parents = {target.study_name: parent for target, _, parent in studies}

    def objective(target: Target, trial: optuna.Trial) -> tuple[TrialState, float | None]:
        t0 = time.monotonic()
        params = suggest(trial, target.space)
        dead_attempt = trial.user_attrs.get("mlflow_run_id")  # a copy of a trial whose worker died
        if dead_attempt:
            tracker.end_trial(dead_attempt, {}, TrialState.FAIL, None,
                              f"worker died; re-run as trial {trial.number}")  # fmt: skip
        run_id = tracker.start_trial(parents[target.study_name], trial.study, trial, params)
        if run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("device", device)
        state, value, note = run_trial(
            target, trial, params, lambda r: tracker.log_row(run_id, r), device
        )
        tracker.end_trial(run_id, params, state, value, note)
        shown_value = f"{target.objective} = {value:.4g}" if value is not None else note
        print(f"bench: {target.study_name} trial {trial.number} (slot {trial.user_attrs['slot']}, "
              f"seed {trial.user_attrs['seed']}): {state.name}, {shown_value} "
              f"[{time.monotonic() - t0:.1f} s]", file=sys.stderr)  # fmt: skip
        return state, value

    heartbeat = suite.spec.tuning.heartbeat_seconds
    work([(t, s) for t, s, _ in studies], store, objective, heartbeat_seconds=heartbeat)


def _connect(suite: Suite) -> Cluster | None:
    train = suite.spec.train
    if train.executor == "local":
        return None
    return connect(suite.spec.ray.address, train.device, train.cpus_per_cell, train.gpus_per_cell)


def _shared_storage(setting: str | None) -> str:
    """The storage as every node names it: an absolute path; never one only this process sees."""
    if setting and setting.startswith("journal:"):
        return "journal:" + str(Path(setting.removeprefix("journal:")).resolve())
    if setting and (setting == "sqlite:///:memory:" or setting.startswith("sqlite://") and
                    not setting.startswith("sqlite:///")):  # fmt: skip
        raise UsageError(f"storage={setting}: Ray workers cannot share an in-memory study")
    if setting and setting.startswith("sqlite:///") and not setting.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(setting.removeprefix("sqlite:///")).resolve())
    return setting or default_url()


def tune_worker(
    suite: Suite, only: list[str] | None, n_trials: int, storage: str, device: str,
    env: dict[str, str],
) -> None:  # fmt: skip
    """One trial worker as a Ray task: join the studies and run trials until none is left."""
    os.environ.update(env)
    store, store_name = open_storage(storage, suite.spec.tuning.heartbeat_seconds)
    studies = _open_studies(suite, targets(suite, only), store, store_name, n_trials, device)
    _work_share(suite, studies, store, "cuda:0" if device == "cuda" else device)


def _work_on_ray(
    cluster: Cluster, suite: Suite, only: list[str] | None, n_trials: int, storage: str
) -> None:  # fmt: skip
    """`train.workers` trial workers as Ray tasks (0: as many as the cluster's CPUs hold)."""
    ray = import_ray()
    train = suite.spec.train
    n = train.workers or max(1, int(cluster.resources.get("CPU", 1) // cluster.cpus_per_cell))
    task = ray.remote(tune_worker).options(
        num_cpus=cluster.cpus_per_cell, num_gpus=cluster.gpus_per_cell,
        max_retries=train.retries,  # a worker whose node died starts again and joins the studies
    )  # fmt: skip
    print(f"bench: {n} trial workers as Ray tasks", file=sys.stderr)
    # Where this process's MLflow store and cache are, for workers in other folders and nodes.
    env = {**task_env(), "MLFLOW_TRACKING_URI": resolve_uri(suite.spec.tracking.uri)}
    refs = [task.remote(suite, only, n_trials, storage, cluster.device, env) for _ in range(n)]
    try:
        for ref in refs:
            ray.get(ref)
    except ray.exceptions.RayError as exc:  # its trials are taken over by the other workers
        print(f"bench: a trial worker ended with {type(exc).__name__}; others carry on",
              file=sys.stderr)  # fmt: skip
        ray.wait(refs, num_returns=len(refs))
    finally:
        # Only workers still running (the driver was interrupted): cancelling one that has just
        # finished races with its completion in Ray's core worker, which then aborts the driver
        # ("Check failed: it != submissible_tasks_.end() Tried to complete task that was not
        # pending", the race of ray-project/ray#54798; 1 run in 3 of the cluster tuning test).
        _, unfinished = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in unfinished:
            ray.cancel(ref, force=True)


def _compare(
    tuned: list[Target], efforts: dict[str, dict[str, Any]], folder: Path, best_files: list[Path],
    seeds: int,
) -> int:  # fmt: skip
    """Re-run each entry's best configuration over `seeds` seeds and rank the entries."""
    from bench.cli import cmd_run, new_run_dir

    best = {label: e["params"] for label, e in efforts.items() if e["params"]}
    for label in efforts:
        if label not in best:
            efforts[label]["notes"].append(f"{label}: no complete trial, so it is not re-run")
    if not best:
        print("bench: no entry has a complete trial; nothing to compare", file=sys.stderr)
        return 1
    suite = tuned[0].suite
    fair_path = folder / f"{suite.name}_fair.toml"
    atomic_write_text(fair_path, fair.fair_suite(tuned, best, seeds))
    run_dir = new_run_dir(f"{suite.name}_fair", None)
    rc = cmd_run([f"suite={fair_path}", f"out={run_dir}"])
    text = fair.write_summary(tuned, efforts, run_dir, best_files)
    fair.save_summary(text, folder / "fair.md", run_dir / "fair.md")
    print(f"bench: fair comparison at {shown(folder / 'fair.md')}", file=sys.stderr)
    return rc


def _one_thread_per_process(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
