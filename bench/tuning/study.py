"""One Optuna study per tuned entry, with exactly N trials however many workers share it.

Exactly N: the worker that creates a study (creating a study name succeeds only once) queues N
WAITING trials, slots 0..N-1. Workers only ever claim a waiting trial (WAITING → RUNNING succeeds
for one claimant) and never create one, so N slots are run whatever the number of workers. A trial
whose worker died is failed and a copy with the same slot, parameters and seed is queued again
(RDB storages: no heartbeat for 2 × `tuning.heartbeat_seconds`, from any machine; any storage: a
dead process on this machine, seen at once). So a study ends with exactly N COMPLETE or PRUNED
trials, one per slot; a killed trial stays as FAIL beside the copy that replaced it.

A trial is one cell (entry, tuning dataset, seed 10000 + slot) at the suite's budget, on the
suite's device. Its value is the objective column (`fid/lenet-mnist5k`) at the final evaluation; every evaluation before it is reported, and the
pruner may stop the cell there (PRUNED). A cell whose loss became non-finite is PRUNED too, with
the user attribute `stopped = diverged`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from bench.config import (
    CategoricalParam,
    Entry,
    FloatParam,
    IntParam,
    Suite,
    flatten,
    objective_column,
)
from bench.errors import UsageError
from bench.metrics import column_direction
from bench.runner import CellJob, run_cell
from bench.tuning.storage import RETRY_DEAD

SEED_BASE = 10_000  # trial seeds: apart from the seeds 0..K-1 that re-run the best configurations
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
READY_TIMEOUT = 120.0  # seconds a joining worker waits for the creator to queue the slots

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class Target:
    """One tuned entry of a suite, the study that tunes it, and its search space."""

    suite: Suite
    entry: Entry
    dataset: str
    space: dict[str, FloatParam | IntParam | CategoricalParam]
    study_name: str
    objective: str  # the result column tuned: `fid/lenet-mnist5k`, `energy_distance`

    @property
    def direction(self) -> str:
        return "maximize" if column_direction(self.objective) else "minimize"


def targets(suite: Suite, only: list[str] | None = None) -> list[Target]:
    """The suite's entries that have a search space (or those of `only`), in suite order."""
    tuning = suite.spec.tuning
    if tuning is None:
        raise UsageError(
            f"suite '{suite.name}' has no [tuning] table; add one with an objective and "
            "[tuning.space.ENTRY] search ranges (see suites/wgan_vs_gp.toml)"
        )
    tuned = [e for e in suite.entries if e.label in tuning.space]
    if only:
        unknown = [label for label in only if label not in tuning.space]
        if unknown:
            raise UsageError(
                f"entries={','.join(only)}: no search space for {', '.join(unknown)}; "
                f"entries with one: {', '.join(tuning.space) or '(none)'}"
            )
        tuned = [e for e in tuned if e.label in only]
    if not tuned:
        raise UsageError(f"suite '{suite.name}': [tuning.space] names no entry to tune")
    suffix = "" if suite.profile == "default" else f"@{suite.profile}"
    dataset = tuning.dataset or suite.spec.datasets[0]
    column = objective_column(suite.spec)
    return [
        Target(suite, e, dataset, tuning.space[e.label], f"{suite.name}/{e.label}{suffix}", column)
        for e in tuned
    ]


def settings(target: Target) -> dict[str, Any]:
    """Everything that fixes a trial's result: stored in the study, compared when a worker joins."""
    spec = target.suite.spec
    return {
        "variant": target.entry.variant,
        "config": target.entry.config.model_dump(),
        "dataset": target.dataset,
        "budget": spec.budget.model_dump(),
        "batch_size": spec.train.batch_size,
        "eval": spec.eval.model_dump(),
        "metrics": list(spec.metrics),
        "objective": target.objective,
        "pruner": spec.tuning.pruner,
        "startup_trials": spec.tuning.startup_trials,
        "space": {k: v.model_dump() for k, v in target.space.items()},
    }


def make_pruner(suite: Suite) -> optuna.pruners.BasePruner:
    tuning, spec = suite.spec.tuning, suite.spec
    if tuning.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tuning.startup_trials)
    if tuning.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.eval.every, max_resource=spec.budget.gen_steps
        )
    return optuna.pruners.NopPruner()


def make_sampler(suite: Suite, seed: int) -> optuna.samplers.BaseSampler:
    """TPE seeded per slot: one worker repeats itself exactly; two never draw the same startup."""
    return optuna.samplers.TPESampler(n_startup_trials=suite.spec.tuning.startup_trials, seed=seed)


# --- Creating and joining a study ----------------------------------------------------------------


def open_study(target: Target, storage: BaseStorage, trials: int) -> tuple[optuna.Study, bool]:
    """Create the study with its N slots queued, or join it. Returns (study, created here)."""
    pruner = make_pruner(target.suite)
    try:
        study = optuna.create_study(
            study_name=target.study_name, storage=storage, direction=target.direction,
            pruner=pruner, sampler=make_sampler(target.suite, SEED_BASE),
        )  # fmt: skip
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(
            study_name=target.study_name, storage=storage, pruner=pruner,
            sampler=make_sampler(target.suite, SEED_BASE),
        )  # fmt: skip
        created = False
    if created:
        study.set_user_attr("settings", settings(target))
        _queue_slots(study, 0, trials)
        study.set_user_attr("trials", trials)  # last: tells joining workers the slots are queued
        return study, True

    # Joining: wait for the creator's slots, then check that this worker would run the same trials.
    deadline = time.monotonic() + READY_TIMEOUT
    while "trials" not in study.user_attrs:
        if time.monotonic() > deadline:
            raise UsageError(
                f"study '{target.study_name}' exists but its trials were never queued (its "
                "creator died while creating it?); delete it or tune under another storage"
            )
        time.sleep(0.5)
    stored = flatten(study.user_attrs["settings"])
    mine = flatten(json.loads(json.dumps(settings(target))))
    changed = sorted(k for k in stored.keys() | mine.keys() if stored.get(k) != mine.get(k))
    if changed:
        raise UsageError(
            f"study '{target.study_name}' was started with other settings ({', '.join(changed)}); "
            "its trials would not be comparable. Restore them, or use another storage=..."
        )
    if study.direction.name.lower() != target.direction:
        raise UsageError(f"study '{target.study_name}' optimises in the other direction")
    have = study.user_attrs["trials"]
    if trials > have:  # more trials asked for: queue the missing slots (do this from one worker)
        _queue_slots(study, have, trials)
        study.set_user_attr("trials", trials)
    return study, False


def _queue_slots(study: optuna.Study, start: int, stop: int) -> None:
    for slot in range(start, stop):
        study.enqueue_trial({}, user_attrs={"slot": slot, "seed": SEED_BASE + slot})


# --- Working on studies --------------------------------------------------------------------------

Objective = Callable[[Target, optuna.Trial], tuple[TrialState, float | None]]


def work(
    studies: list[tuple[Target, optuna.Study]],
    storage: BaseStorage,
    objective: Objective,
    poll_seconds: float = 1.0,
    heartbeat_seconds: int = 10,
) -> None:
    """Run queued trials of the studies, first study first, until none is waiting or running."""
    me = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        claimed = None
        for target, study in studies:
            _fail_dead_trials(study, storage)
            trial_id = _claim(storage, study)
            if trial_id is not None:
                claimed = (target, study, trial_id)
                break
        if claimed is None:
            busy = any(
                storage.get_all_trials(
                    storage.get_study_id_from_name(s.study_name),
                    deepcopy=False,
                    states=(TrialState.RUNNING, TrialState.WAITING),
                )
                for _, s in studies
            )
            if not busy:
                return
            time.sleep(poll_seconds)  # others are running the last trials; one may die
            continue

        target, study, trial_id = claimed
        storage.set_trial_user_attr(trial_id, "worker", me)
        slot = storage.get_trial(trial_id).user_attrs["slot"]
        study.sampler = make_sampler(target.suite, SEED_BASE + slot)
        trial = optuna.Trial(study, trial_id)
        with _Heartbeat(storage, trial_id, heartbeat_seconds):
            state, value = objective(target, trial)
        try:
            if state == TrialState.COMPLETE:
                study.tell(trial, value)
            else:
                study.tell(trial, state=state)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            # Another worker judged this trial dead and queued it again; its copy counts instead.
            print(f"bench: trial {trial.number} of {study.study_name} was already finished "
                  f"elsewhere ({exc}); its copy counts instead", flush=True)  # fmt: skip


def _claim(storage: BaseStorage, study: optuna.Study) -> int | None:
    """Switch one WAITING trial to RUNNING (atomic in the storage); its id, or None."""
    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:
            if storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                return trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def _fail_dead_trials(study: optuna.Study, storage: BaseStorage) -> None:
    """Fail RUNNING trials whose worker is gone and queue each again (same slot and parameters)."""
    optuna.storages.fail_stale_trials(study)  # RDB heartbeat: workers on any machine
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in storage.get_all_trials(study_id, states=(TrialState.RUNNING,)):
        worker = frozen.user_attrs.get("worker", "")
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first and queued the copy
        RETRY_DEAD(study, storage.get_trial(trial_id))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Heartbeat:
    """Records the running trial's heartbeat in an RDB storage every few seconds."""

    def __init__(self, storage: BaseStorage, trial_id: int, seconds: int) -> None:
        self.storage, self.trial_id, self.seconds = storage, trial_id, seconds
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> None:
        if isinstance(self.storage, RDBStorage):
            self.storage.record_heartbeat(self.trial_id)
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(self.seconds):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a busy database: the next beat will do
                pass

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


# --- One trial -----------------------------------------------------------------------------------


def suggest(trial: optuna.Trial, space: dict[str, Any]) -> dict[str, Any]:
    """Config values for this trial from its search space (list choices travel as JSON text)."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, FloatParam):
            params[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
        elif isinstance(p, IntParam):
            params[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
        elif all(isinstance(c, bool | int | float | str) for c in p.choices):
            params[name] = trial.suggest_categorical(name, p.choices)
        else:
            params[name] = json.loads(trial.suggest_categorical(name, _json_choices(p)))
    return params


def _json_choices(p: CategoricalParam) -> list[str]:
    return [json.dumps(c) for c in p.choices]


def config_values(target: Target, params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's stored parameters of a trial as the config values they stand for."""
    out = {}
    for name, value in params.items():
        p = target.space.get(name)
        is_json = isinstance(p, CategoricalParam) and value not in p.choices
        out[name] = json.loads(value) if is_json and isinstance(value, str) else value
    return out


def run_trial(
    target: Target,
    trial: optuna.Trial,
    params: dict[str, Any],
    on_row: Callable[[dict[str, Any]], None],
    device: str = "cpu",
) -> tuple[TrialState, float | None, str]:
    """Train one cell with the trial's `params` on `device`, reporting each evaluation.
    (state, value, note)."""
    spec = target.suite.spec
    config = {**target.entry.config.model_dump(), **params}
    seed = trial.user_attrs["seed"]
    objective = target.objective

    def should_stop(step: int, row: dict[str, Any]) -> bool:
        value = row.get(objective)
        if isinstance(value, float | int) and math.isfinite(value):
            trial.report(float(value), step)
        return trial.should_prune()

    rows: list[dict[str, Any]] = []

    def emit(kind: str, payload: Any) -> None:
        if kind == "rows":
            for row in payload:
                rows.append(row)
                on_row(row)

    with tempfile.TemporaryDirectory(prefix="bench-trial-") as cell_dir:
        job = CellJob(
            cell_id=f"{target.entry.label}__{target.dataset}__s{seed}",
            label=target.entry.label, variant=target.entry.variant, config=config,
            dataset=target.dataset, seed=seed, gen_steps=spec.budget.gen_steps,
            batch_size=spec.train.batch_size, eval=spec.eval.model_dump(),
            metrics=list(spec.metrics), device=device, cell_dir=cell_dir,
            checkpoint_every=spec.budget.gen_steps,  # one trial is short: no checkpoints midway
            progress_every=spec.budget.gen_steps, task=spec.task,
        )  # fmt: skip
        status = run_cell(job, emit, should_stop)

    last = rows[-1] if rows else {}
    if status == "stopped":
        return TrialState.PRUNED, None, f"pruned at step {last.get('step')}"
    if status == "diverged":
        trial.set_user_attr("stopped", "diverged")
        return TrialState.PRUNED, None, str(last.get("note", "diverged"))
    value = last.get(objective)
    if status != "ok" or not isinstance(value, float | int) or not math.isfinite(value):
        note = missing_reason(last, objective)
        trial.set_user_attr("note", note[:500])
        return TrialState.FAIL, None, note
    return TrialState.COMPLETE, float(value), ""


def missing_reason(row: dict[str, Any], column: str) -> str:
    """Why the final row has no finite `column`: the notes about that column or its metric, else the
    cell's failure note, else a plain statement."""
    metric = column.split("/", 1)[0]
    notes = [n for n in str(row.get("note") or "").split("; ") if n]
    mine = [n for n in notes if n.split(":", 1)[0] in (column, metric)]
    if row.get("status") == "failed" and notes:
        mine = mine or notes
    shown = "; ".join(mine) if mine else "no note names it"
    return f"no finite {column} at the final evaluation: {shown}"


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials of the study by state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)."""
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out
