"""MLflow mirror of studies: experiment `tune/<suite>`, one parent run per study, a child per trial.

The parent run's id is kept in the study (user attribute `mlflow_run_id`), so every worker on the
storage logs its trials under the same parent. A child run carries the trial's parameters, seed
and slot, every evaluation (step = generator step) and its end: FINISHED for COMPLETE, KILLED for
PRUNED, FAILED for FAIL, with the tag `optuna.state` naming Optuna's state. The first tracking
failure is reported once; tracking then stops in this process and the study goes on.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from bench.tracking import ARTIFACTS_DIR, NOT_METRICS, mlflow_client
from bench.tuning.study import Target

RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}


class StudyTracker:
    """Logs studies and trials to MLflow; a no-op when `uri` is None or after the first failure."""

    def __init__(self, uri: str | None) -> None:
        self.uri = uri
        self.error: str | None = None
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = mlflow_client(self.uri)
        return self._client

    def _guard(self, fn: Any, *args: Any) -> Any:
        if self.uri is None or self.error is not None:
            return None
        try:
            return fn(*args)
        except Exception as exc:  # server down, wrong URI: the study goes on without tracking
            self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"bench: tracking to {self.uri} failed and is off for this process "
                  f"({self.error}); the study itself is unaffected", file=sys.stderr)  # fmt: skip
            return None

    # --- Studies ---------------------------------------------------------------------------------

    def study_run(self, target: Target, study: optuna.Study, storage_name: str) -> str | None:
        """The study's parent run, created by the first worker that needs it."""
        return self._guard(self._study_run, target, study, storage_name)

    def _study_run(self, target: Target, study: optuna.Study, storage_name: str) -> str:
        run_id = study.user_attrs.get("mlflow_run_id")
        if run_id and study.user_attrs.get("mlflow_uri") == self.uri:
            return run_id
        exp = self._experiment(f"tune/{target.suite.name}")
        tags = {"optuna.study": study.study_name, "optuna.storage": storage_name,
                "suite": target.suite.name, "profile": target.suite.profile,
                "variant": target.entry.label, "variant_impl": target.entry.variant,
                "dataset": target.dataset, "objective": target.objective,
                "direction": target.direction}  # fmt: skip
        run = self.client.create_run(exp, run_name=study.study_name, tags=tags)
        run_id = run.info.run_id
        params = {f"space.{k}": v.model_dump() for k, v in target.space.items()}
        params |= {"trials": study.user_attrs.get("trials"), "pruner": target.suite.spec.tuning.pruner,
                   "gen_steps": target.suite.spec.budget.gen_steps}  # fmt: skip
        self._params(run_id, params)
        study.set_user_attr("mlflow_run_id", run_id)
        study.set_user_attr("mlflow_uri", self.uri)
        return run_id

    def finish_study(
        self, parent: str | None, files: list[Path], metrics: dict[str, float], done: bool
    ) -> None:
        """Attach plots and best parameters to the study's run; close it when the study is done."""
        self._guard(self._finish_study, parent, files, metrics, done)

    def _finish_study(
        self, parent: str | None, files: list[Path], metrics: dict[str, float], done: bool
    ) -> None:
        if parent is None:
            return
        from mlflow.entities import Metric

        for path in files:
            self.client.log_artifact(parent, str(path))
        batch = [Metric(k, v, 0, 0) for k, v in metrics.items() if math.isfinite(v)]
        if batch:
            self.client.log_batch(parent, metrics=batch)
        self.client.set_terminated(parent, "FINISHED" if done else "FAILED")

    # --- Trials ----------------------------------------------------------------------------------

    def start_trial(
        self, parent: str | None, study: optuna.Study, trial: optuna.Trial, params: dict[str, Any]
    ) -> str | None:
        """A child run for the trial, with its parameters, slot and seed."""
        return self._guard(self._start_trial, parent, study, trial, params)

    def _start_trial(
        self, parent: str | None, study: optuna.Study, trial: optuna.Trial, params: dict[str, Any]
    ) -> str | None:
        if parent is None:
            return None
        attrs = trial.user_attrs
        tags = {"mlflow.parentRunId": parent, "optuna.study": study.study_name,
                "optuna.trial_number": str(trial.number), "optuna.state": "RUNNING",
                "slot": str(attrs["slot"]), "seed": str(attrs["seed"])}  # fmt: skip
        exp = self.client.get_run(parent).info.experiment_id
        name = f"trial {trial.number} · slot {attrs['slot']} · seed {attrs['seed']}"
        run_id = self.client.create_run(exp, run_name=name, tags=tags).info.run_id
        self._params(run_id, {**params, "seed": attrs["seed"], "slot": attrs["slot"]})
        return run_id

    def log_row(self, run_id: str | None, row: dict[str, Any]) -> None:
        self._guard(self._log_row, run_id, row)

    def _log_row(self, run_id: str | None, row: dict[str, Any]) -> None:
        if run_id is None:
            return
        from mlflow.entities import Metric

        stamp, step = int(float(row.get("time") or 0) * 1000), int(row["step"])
        batch = [
            Metric(k, float(v), stamp, step)
            for k, v in row.items()
            if k not in NOT_METRICS
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
        ]
        if batch:
            self.client.log_batch(run_id, metrics=batch[:1000])

    def end_trial(
        self, run_id: str | None, params: dict[str, Any], state: TrialState, value: float | None,
        note: str,
    ) -> None:  # fmt: skip
        self._guard(self._end_trial, run_id, params, state, value, note)

    def _end_trial(
        self, run_id: str | None, params: dict[str, Any], state: TrialState, value: float | None,
        note: str,
    ) -> None:  # fmt: skip
        if run_id is None:
            return
        from mlflow.entities import Metric, RunTag

        tags = [RunTag("optuna.state", state.name)] + ([RunTag("note", note)] if note else [])
        metrics = [Metric("objective", value, 0, 0)] if value is not None else []
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        self.client.set_terminated(run_id, RUN_STATUS.get(state, "FAILED"))

    # --- Helpers ---------------------------------------------------------------------------------

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:///"):  # keep artifacts under results/, not ./mlruns
            location = (ARTIFACTS_DIR.resolve() / name).as_uri()
        try:
            exp = self.client.create_experiment(name, artifact_location=location)
        except Exception:  # another worker created it a moment ago
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id
        self.client.set_experiment_tag(exp, "mlflow.experimentKind", "custom_model_development")
        return exp

    def _params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])
