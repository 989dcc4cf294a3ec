"""`bench tune`: tune every entry with a search space, then optionally compare the best fairly."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from bench.config import Suite, shown
from bench.env import placement
from bench.io import atomic_write_text
from bench.tracking import resolve_uri
from bench.tuning import fair
from bench.tuning.outputs import best_trial, write_best, write_plots
from bench.tuning.storage import TUNING_ROOT, open_storage
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
    # Trials run one at a time in this process, on the device a `bench run` of the suite would use.
    device, _, _ = placement(suite)
    store, store_name = open_storage(storage, tuning.heartbeat_seconds)
    _one_thread_per_process(suite.spec.train.threads)
    tracking = suite.spec.tracking
    tracker = StudyTracker(resolve_uri(tracking.uri) if tracking.enabled else None)

    # Create or join one study per entry; the parent MLflow run's id is kept in the study.
    studies: list[tuple[Target, optuna.Study]] = []
    parents: dict[str, str | None] = {}
    for target in tuned:
        study, created = open_study(target, store, n_trials)
        parents[target.study_name] = tracker.study_run(target, study, store_name)
        studies.append((target, study))
        print(f"bench: study '{target.study_name}' in {store_name} "
              f"({'created' if created else 'joined'}; {study.user_attrs['trials']} trials, "
              f"{target.direction} {target.objective} on {target.dataset}, {device})",
              file=sys.stderr)  # fmt: skip

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

    work(studies, store, objective, heartbeat_seconds=tuning.heartbeat_seconds)

    # Every study is finished (nothing waiting or running): best parameters, plots, tracking.
    efforts: dict[str, dict[str, Any]] = {}
    best_files: list[Path] = []
    incomplete = []
    for target, study in studies:
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
        tracker.finish_study(parents[target.study_name], files, metrics, done)
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
