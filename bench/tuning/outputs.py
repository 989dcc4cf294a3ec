"""What a finished study leaves under results/tuning/<suite>/: best parameters and plots."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from bench import tomlw  # noqa: E402
from bench.config import shown  # noqa: E402
from bench.io import atomic_write_bytes, atomic_write_text  # noqa: E402
from bench.tuning.study import Target, config_values, counts  # noqa: E402


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best COMPLETE trial, or None when no trial completed."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def write_best(target: Target, study: optuna.Study, folder: Path) -> Path | None:
    """`<entry>.toml`: the best trial's values as a delta usable as `bench run ... with=FILE`."""
    best = best_trial(study)
    if best is None:
        return None
    path = folder / f"{target.entry.label}.toml"
    n = counts(study)
    header = [
        f"# Best of {n.get('COMPLETE', 0) + n.get('PRUNED', 0)} trials "
        f"({n.get('COMPLETE', 0)} complete, {n.get('PRUNED', 0)} pruned) of study "
        f"'{study.study_name}':",
        f"# {target.objective} = {best.value:.6g} ({target.direction}) on {target.dataset}, "
        f"trial {best.number}, seed {best.user_attrs.get('seed')}, "
        f"{target.suite.spec.budget.gen_steps} generator steps.",
        f"# Apply with: bench run suite={target.suite.name} with={shown(path)}",
    ]
    delta = {"variants": {target.entry.label: config_values(target, best.params)}}
    atomic_write_text(path, "\n".join(header) + "\n\n" + tomlw.dumps(delta))
    return path


def write_plots(target: Target, study: optuna.Study, folder: Path) -> tuple[list[Path], list[str]]:
    """Optimisation history and parameter importances as PNG; (files, notes on what is missing)."""
    from optuna.visualization import matplotlib as ovm

    label = target.entry.label
    files, notes = [], []
    plots: dict[str, Any] = {
        "history": lambda: ovm.plot_optimization_history(study, target_name=target.objective),
        "importance": lambda: ovm.plot_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target_name=target.objective,
        ),
    }  # fmt: skip
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if completed < 2:
        plots.pop("importance")
        notes.append(f"{label}: parameter importances need at least 2 complete trials "
                     f"(have {completed})")  # fmt: skip
    if completed < 1:
        plots.pop("history")
        notes.append(f"{label}: no complete trial, so no optimisation history")
    for kind, plot in plots.items():
        try:
            ax = plot()
        except Exception as exc:  # e.g. importances when every complete trial drew the same value
            notes.append(f"{label}: no {kind} plot ({type(exc).__name__}: {exc})")
            continue
        fig = ax.figure
        fig.set_size_inches(7, 4.5)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        path = folder / f"{label}_{kind}.png"
        atomic_write_bytes(path, buf.getvalue())
        files.append(path)
    return files, notes
