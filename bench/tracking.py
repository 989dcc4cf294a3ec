"""MLflow mirror of a run folder: the bench run is a parent run, each cell a nested child run.

The run folder stays the record. What has reached MLflow is noted in `tracking.json` beside it, so
`bench sync RUN_DIR` sends only what is missing, and sending a row twice is harmless (each point
carries the row's own timestamp, and MLflow drops exact duplicates). The first tracking failure of a
run is reported once; tracking then stops for that run and the suite goes on.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import flatten
from bench.io import atomic_write_json
from bench.results import KEY_COLUMNS, final_steps
from bench.stats import mean_ci

STATE_NAME = "tracking.json"
DEFAULT_STORE = Path("results") / "mlflow.db"
ARTIFACTS_DIR = Path("results") / "mlartifacts"
# Row columns that describe a row rather than measure something; everything numeric else is a metric.
NOT_METRICS = {*KEY_COLUMNS, "status", "note", "time"}
PARAM_LIMIT = 6000  # MLflow's longest parameter value


def resolve_uri(setting: str | None) -> str:
    """The suite/CLI setting, else MLFLOW_TRACKING_URI, else the embedded store under results/."""
    if setting:
        return setting
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{DEFAULT_STORE.resolve()}"


def mlflow_client(uri: str) -> Any:
    """An MlflowClient for `uri` that fails fast when a server is down (no minutes of retries)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def cell_id(row: dict[str, Any]) -> str:
    return f"{row['variant']}__{row['dataset']}__s{int(row['seed'])}"


class Tracker:
    """Sends a run folder's rows, parameters, tags and artifacts to MLflow, resumably."""

    def __init__(self, run_dir: Path, uri: str, log_weights: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.uri = uri
        self.log_weights = log_weights
        self.error: str | None = None
        self.config = json.loads((self.run_dir / "config.json").read_text())
        self.env = json.loads((self.run_dir / "env.json").read_text())
        self.state: dict[str, Any] = {"uri": uri, "parent": None, "children": {}, "logged": {},
                                      "cells_closed": [], "closed": False}  # fmt: skip
        state_path = self.run_dir / STATE_NAME
        if state_path.is_file():
            saved = json.loads(state_path.read_text())
            if saved.get("uri") == uri:  # another store starts from nothing
                self.state.update(saved)
        self._client: Any = None

    # --- Guarded entry points: the suite never stops because of tracking -------------------------

    def log_rows(self, rows: list[dict[str, Any]]) -> None:
        self._guard(self._log_rows, rows)

    def close_cell(self, cell: str, status: str) -> None:
        self._guard(self._close_cell, cell, status)

    def close(self, statuses: dict[str, str]) -> None:
        self._guard(self._close, statuses)

    def catch_up(self, df: pd.DataFrame, statuses: dict[str, str]) -> None:
        """At the end of a run: send whatever has not reached MLflow yet, guarded like the rest."""
        self._guard(self.sync, df, statuses)

    def sync(self, df: pd.DataFrame, statuses: dict[str, str]) -> None:
        """Send everything the folder holds that MLflow lacks (used by `bench sync`)."""
        self._log_rows(df.to_dict("records"))
        for cell, status in statuses.items():
            self._close_cell(cell, status)
        self._close(statuses)

    def _guard(self, fn: Any, *args: Any) -> None:
        if self.error is not None:
            return
        try:
            fn(*args)
        except Exception as exc:  # tracking server down, wrong URI, disk full on the store's side
            self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"bench: tracking to {self.uri} failed and is off for this run ({self.error}); "
                  f"results stay in {self.run_dir}; send them later with "
                  f"`bench sync {self.run_dir}`", file=sys.stderr)  # fmt: skip

    # --- MLflow ----------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = mlflow_client(self.uri)
        return self._client

    def _save_state(self) -> None:
        atomic_write_json(self.run_dir / STATE_NAME, self.state)

    def _exists(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except Exception as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
                return False
            raise

    def _experiment(self) -> str:
        name = self.config["suite"]
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:///"):  # keep artifacts under results/, not ./mlruns
            location = (ARTIFACTS_DIR.resolve() / name).as_uri()
        exp = self.client.create_experiment(name, artifact_location=location)
        # The 3.x UI opens such an experiment on its training-runs view (parent and nested children).
        self.client.set_experiment_tag(exp, "mlflow.experimentKind", "custom_model_development")
        return exp

    def _common_tags(self) -> dict[str, str]:
        git, dev = self.env.get("git", {}), self.env.get("device", {})
        return {
            "suite": self.config["suite"],
            "profile": self.config["profile"],
            "git_commit": str(git.get("commit")),
            "git_dirty": str(git.get("dirty")),
            "torch_version": str(self.env.get("packages", {}).get("torch")),
            "device": f"{dev.get('type')} ({dev.get('name')})",
            "threads": str(self.env.get("torch_threads_per_worker")),
            "run_folder": str(self.run_dir.resolve()),
        }

    def _parent(self) -> str:
        if self._exists(self.state["parent"]):
            return self.state["parent"]
        exp = self._experiment()
        run = self.client.create_run(exp, run_name=self.run_dir.name, tags=self._common_tags())
        run_id = run.info.run_id
        params = {k: v for k, v in flatten(self.config).items() if not k.startswith("variants.")}
        self._log_params(run_id, params)
        self.state.update(parent=run_id, children={}, logged={}, cells_closed=[], closed=False)
        self._save_state()
        return run_id

    def _child(self, cell: str, row: dict[str, Any]) -> str:
        parent = self._parent()
        run_id = self.state["children"].get(cell)
        if self._exists(run_id):
            return run_id
        label, dataset, seed = row["variant"], row["dataset"], int(row["seed"])
        entry = self.config["variants"][label]
        tags = {**self._common_tags(), "mlflow.parentRunId": parent, "variant": label,
                "variant_impl": entry["variant"], "dataset": dataset, "seed": str(seed),
                "dataset_hash": _dataset_hash(dataset), "cell": cell}  # fmt: skip
        # The feature extractors behind image metrics: which weights measured this cell's numbers.
        tags.update({k: str(v) for k, v in row.items() if k.startswith("backbone_sha256/")})
        exp = self.client.get_run(parent).info.experiment_id
        run = self.client.create_run(exp, run_name=f"{label} · {dataset} · seed {seed}", tags=tags)
        run_id = run.info.run_id
        # The fully resolved configuration of this cell, flattened.
        cfg = {k: v for k, v in self.config.items() if k != "variants"}
        cfg = {**flatten(cfg), **{f"variant.{k}": v for k, v in entry.items()}}
        self._log_params(run_id, {**cfg, "dataset": dataset, "seed": seed})
        self.state["children"][cell] = run_id
        self.state["logged"][cell] = []
        self._save_state()
        return run_id

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:PARAM_LIMIT]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def _log_rows(self, rows: list[dict[str, Any]]) -> None:
        """Send the rows not sent yet, each cell's in batches, noting them as sent after each."""
        from mlflow.entities import Metric

        by_cell: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_cell.setdefault(cell_id(row), []).append(row)
        for cell, cell_rows in by_cell.items():
            fresh = [r for r in cell_rows if _row_key(r) not in self.state["logged"].get(cell, [])]
            if not fresh:
                continue
            run_id = self._child(cell, fresh[0])
            batch: list[Metric] = []
            keys: list[str] = []
            for i, row in enumerate(fresh):
                stamp = int(float(row.get("time") or 0) * 1000)
                batch += [
                    Metric(name, float(value), stamp, int(row["step"]))
                    for name, value in row.items()
                    if name not in NOT_METRICS and _is_number(value)
                ]
                keys.append(_row_key(row))
                if len(batch) >= 900 or i == len(fresh) - 1:  # MLflow takes 1,000 per batch
                    self.client.log_batch(run_id, metrics=batch)
                    self.state["logged"][cell] += keys
                    self._save_state()
                    batch, keys = [], []

    def _close_cell(self, cell: str, status: str) -> None:
        run_id = self.state["children"].get(cell)
        if not run_id or cell in self.state["cells_closed"]:
            return
        cell_dir = self.run_dir / "cells" / cell
        weights = [cell_dir / "networks.pt"] if self.log_weights else []
        for path in [cell_dir / "weight_hist.npz", cell_dir / "samples.npz", *weights,
                     self.run_dir / "env.json"]:  # fmt: skip
            if path.is_file():
                self.client.log_artifact(run_id, str(path))
        for folder in ("grids", "midi"):  # sample pictures; a music cell's MIDI files
            if (cell_dir / folder).is_dir():
                self.client.log_artifacts(run_id, str(cell_dir / folder), artifact_path=folder)
        rows = _cell_rows(self.run_dir, cell)
        if rows is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "results.csv"
                rows.to_csv(path, index=False)
                self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, _run_status(status))
        if status in ("ok", "diverged"):  # a failed cell may still be resumed
            self.state["cells_closed"].append(cell)
        self._save_state()

    def _close(self, statuses: dict[str, str]) -> None:
        if self.state["closed"]:
            return
        parent = self._parent()
        for name in ["config.json", "env.json", "suite.toml", "results.csv", "summary.md"]:
            if (self.run_dir / name).is_file():
                self.client.log_artifact(parent, str(self.run_dir / name))
        if (self.run_dir / "plots").is_dir():
            self.client.log_artifacts(parent, str(self.run_dir / "plots"), artifact_path="plots")
        self._log_final_summary(parent)
        failed = any(s == "failed" for s in statuses.values())
        self.client.set_terminated(parent, "FAILED" if failed else "FINISHED")
        if not failed:
            self.state["closed"] = True
        self._save_state()

    def _log_final_summary(self, parent: str) -> None:
        """Per (variant, dataset): mean and 95% CI half-width over seeds of each final metric."""
        from mlflow.entities import Metric

        path = self.run_dir / "results.csv"
        if not path.is_file():
            return
        df = pd.read_csv(path)
        final = final_steps(df[df["status"] == "ok"])
        stamp = int(path.stat().st_mtime * 1000)
        metrics = []
        for (label, dataset), group in final.groupby(["variant", "dataset"]):
            for col in group.columns:
                if col in NOT_METRICS or not pd.api.types.is_numeric_dtype(group[col]):
                    continue
                ci = mean_ci(group[col])
                if ci.n == 0:
                    continue
                metrics.append(Metric(f"final/{label}/{dataset}/{col}/mean", ci.mean, stamp, 0))
                if not math.isnan(ci.half_width):
                    metrics.append(
                        Metric(f"final/{label}/{dataset}/{col}/ci95", ci.half_width, stamp, 0)
                    )
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(parent, metrics=metrics[i : i + 1000])


def _dataset_hash(name: str) -> str:
    from bench.registry import DATASETS, load_all

    load_all()
    return DATASETS.get(name)().fingerprint()


def _row_key(row: dict[str, Any]) -> str:
    return f"{int(row['step'])}:{row['status']}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _run_status(status: str) -> str:
    return {"ok": "FINISHED", "diverged": "FINISHED", "failed": "FAILED"}.get(status, "KILLED")


def _cell_rows(run_dir: Path, cell: str) -> pd.DataFrame | None:
    path = run_dir / "results.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path)
    mask = df.apply(lambda r: cell_id(r) == cell, axis=1)
    return df[mask]
