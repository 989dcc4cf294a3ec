"""The fair comparison (Lucic et al. 2018): equal trials per variant, then the best over K seeds.

The best configuration of every tuned entry becomes a suite file of its own (`<suite>_fair.toml`:
the tuning dataset, seeds 0..K-1, the suite's budget and evaluation), run by the ordinary
`bench run`, so its run folder, summary, resume and MLflow mirror are those of any run. The
ranking reads that folder's results.csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import tomlw
from bench.io import atomic_write_text
from bench.metrics import column_direction
from bench.results import final_steps, read_results
from bench.stats import pairwise, rank
from bench.tuning.study import Target


def fair_suite(targets: list[Target], best: dict[str, dict[str, Any]], seeds: int) -> str:
    """The re-run suite as TOML text: each entry at its best values, K seeds, the tuning dataset."""
    suite = targets[0].suite
    resolved = suite.resolved()
    dataset = targets[0].dataset
    tree: dict[str, Any] = {
        "description": f"Best configuration of each tuned entry of {suite.name} (profile "
        f"{suite.profile}), re-run over {seeds} seeds on {dataset}: the fair comparison.",
        "seeds": list(range(seeds)),
        "datasets": [dataset],
        "metrics": resolved["metrics"],
    }
    for table in ("budget", "eval", "train", "checkpoint", "tracking"):
        tree[table] = resolved[table]
    tree["variants"] = {
        t.entry.label: {
            **resolved["variants"][t.entry.label],
            **best[t.entry.label],
            "datasets": [dataset],
        }  # fmt: skip
        for t in targets
        if t.entry.label in best
    }
    header = "# Written by `bench tune ... compare=K`; re-run with `bench run suite=THIS_FILE`.\n"
    return header + tomlw.dumps(tree)


def write_summary(
    targets: list[Target], efforts: dict[str, dict[str, Any]], run_dir: Path, paths: list[Path]
) -> str:
    """Rank the entries of the re-run by mean ± 95% CI of the objective, with pairwise tests."""
    objective = targets[0].objective
    higher = bool(column_direction(objective))
    final = final_steps(read_results(run_dir))
    groups: dict[str, list[float]] = {}
    statuses: dict[str, str] = {}
    for t in targets:
        rows = final[final["variant"] == t.entry.label]
        ok = rows[rows["status"] == "ok"]
        groups[t.entry.label] = [float(v) for v in ok[objective]] if objective in ok else []
        bad = rows[rows["status"] != "ok"]
        statuses[t.entry.label] = ", ".join(f"seed {s}: {st}" for s, st in
                                            zip(bad["seed"], bad["status"], strict=True))  # fmt: skip
    suite = targets[0].suite
    lines = [
        f"# Fair comparison — {suite.name} (profile `{suite.profile}`)",
        "",
        f"Each entry was tuned with the same number of trials on {targets[0].dataset} "
        f"({suite.spec.budget.gen_steps} generator steps per trial, pruner "
        f"`{suite.spec.tuning.pruner}`); its best configuration was then re-run over seeds "
        f"{', '.join(map(str, sorted(set(final['seed']))))} (not used in tuning). Ranked by the mean "
        f"of `{objective}` at the final step ({'higher' if higher else 'lower'} is better), "
        "with its 95% Student-t interval over seeds.",
        "",
        f"| rank | entry | {objective} | trials (complete / pruned / failed) | best in tuning "
        "| best parameters |",
        "|---|---|---|---|---|---|",
    ]
    for i, (label, ci) in enumerate(rank(groups, higher), start=1):
        e = efforts.get(label, {})
        effort = f"{e.get('finished', 0)} ({e.get('COMPLETE', 0)} / {e.get('PRUNED', 0)} / " \
                 f"{e.get('FAIL', 0)})"  # fmt: skip
        params = ", ".join(f"{k} = {_short(v)}" for k, v in e.get("params", {}).items())
        note = f" ({statuses[label]})" if statuses.get(label) else ""
        lines.append(f"| {i} | {label} | {ci.format()}{note} | {effort} | "
                     f"{_short(e.get('best_value'))} | {params} |")  # fmt: skip
    lines += ["", "Pairwise (two-sided Welch t-test over the final values of the seeds, α = 0.05, "
              "no correction for multiple comparisons):", ""]  # fmt: skip
    lines += [f"- {pair.statement()}" for pair in pairwise(groups, higher)]
    notes = [n for e in efforts.values() for n in e.get("notes", [])]
    if notes:
        lines += ["", "Not shown:", ""] + [f"- {n}" for n in notes]
    lines += ["", f"Run folder: `{run_dir}`; best parameters: "
              + ", ".join(f"`{p}`" for p in paths) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def save_summary(text: str, *paths: Path) -> None:
    for path in paths:
        atomic_write_text(path, text)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "–" if v is None else str(v)
