"""Quality gate: final-step metrics of a run against bands measured over seeds, plus the suite's claims.

`bench baseline` turns a run of ≥ `regress.min_seeds` seeds into `results/baselines/<suite>.json`:
per (variant, dataset, metric column) the mean over seeds and the band mean ± k·std (never narrower
than `min_rel_width`·|mean| or the column's `min_abs_width` on a side), with the seeds, k, machine,
thread setting and backbone weights it was measured with. `bench regress` compares the mean of a fresh run's seeds with each band.
A benign change of code moves each seed's value as a new seed would, so the mean of n = 5 seeds moves
by about std·√(2/n) ≈ 0.63·std: k = 3 then flags shifts of about 4.7 such standard errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import claims as claims_mod
from bench.config import RESULT_NEUTRAL, Suite, flatten, suite_from_resolved
from bench.errors import UsageError
from bench.metrics import column_direction, metric_columns
from bench.results import final_steps, final_values, read_results

BASELINE_DIR = Path("results") / "baselines"
FORMAT = 1


def baseline_path(suite: str, profile: str) -> Path:
    """results/baselines/<suite>.json, or <suite>@<profile>.json for a profile other than the default."""
    return BASELINE_DIR / (f"{suite}.json" if profile == "default" else f"{suite}@{profile}.json")


@dataclass(frozen=True)
class RunView:
    """What a run folder says: its suite, environment and final-step row of each cell."""

    run_dir: Path
    suite: Suite
    config: dict[str, Any]
    env: dict[str, Any]
    final: pd.DataFrame

    @classmethod
    def load(cls, run_dir: Path) -> RunView:
        run_dir = Path(run_dir)
        for name in ("config.json", "env.json", "results.csv"):
            if not (run_dir / name).is_file():
                raise UsageError(f"{run_dir}: not a finished run folder (no {name} in it)")
        config = json.loads((run_dir / "config.json").read_text())
        final = final_steps(read_results(run_dir))
        return cls(run_dir, suite_from_resolved(config, str(run_dir / "config.json")), config,
                   json.loads((run_dir / "env.json").read_text()), final)  # fmt: skip

    def not_ok(self) -> list[str]:
        bad = self.final[self.final["status"] != "ok"]
        return [f"{r.variant} · {r.dataset} · seed {r.seed}: {r.status} at step {r.step}"
                for r in bad.itertuples()]  # fmt: skip

    def gated_columns(self) -> list[str]:
        """The suite's metric columns that have a direction (the *_std spreads have none)."""
        cols = metric_columns(self.suite.spec.metrics, self.final.columns)
        return [c for c in cols if column_direction(c) is not None]

    def values(self, variant: str, dataset: str, column: str) -> np.ndarray:
        return final_values(self.final, variant, dataset, column)

    def backbones(self) -> dict[str, str]:
        out = {}
        for col in self.final.columns:
            if col.startswith("backbone_sha256/"):
                shas = self.final[col].dropna().unique()
                out[col.split("/", 1)[1]] = ",".join(sorted(map(str, shas)))
        return out

    def machine(self) -> dict[str, Any]:
        env = self.env
        return {
            "device": env["device"]["type"], "name": env["device"].get("name"),
            "platform": env.get("platform"), "cpu_count": env.get("cpu_count"),
            "workers": env.get("workers"), "threads": env.get("torch_threads_per_worker"),
            "torch": env.get("packages", {}).get("torch"),
        }  # fmt: skip


def judged_by(run: RunView, current: Suite) -> RunView:
    """`run` judged by the suite file as it is now: its band policy, and its claims about entries
    the run trained (a run made before a claim was added is still checked against it)."""
    labels = {e.label for e in run.suite.entries}
    claims = [c for c in current.spec.claims if c.concerns_only(labels)]
    spec = run.suite.spec.model_copy(update={"claims": claims, "regress": current.spec.regress})
    return replace(run, suite=replace(run.suite, spec=spec))


# --- Making a baseline ---------------------------------------------------------------------------


def check_seeds(suite: Suite, where: str) -> None:
    """A baseline's bands come from seed-to-seed spread: refuse fewer than regress.min_seeds seeds."""
    need = suite.spec.regress.min_seeds
    if len(suite.spec.seeds) < need:
        raise UsageError(
            f"{where}: a baseline needs at least {need} seeds to measure their spread "
            f"(regress.min_seeds); {len(suite.spec.seeds)} given: run with "
            f"seeds={','.join(map(str, range(need)))}"
        )


def make_baseline(run: RunView) -> dict[str, Any]:
    """The baseline of a finished run; UsageError when the run cannot serve as one."""
    spec = run.suite.spec
    where = f"{run.run_dir}"
    check_seeds(run.suite, where)
    bad = run.not_ok()
    if bad:
        raise UsageError(f"{where}: cells that did not finish ok cannot make a baseline: "
                         + "; ".join(bad))  # fmt: skip
    k, floor, widths = spec.regress.k, spec.regress.min_rel_width, spec.regress.min_abs_width
    bands = []
    for entry in run.suite.entries:
        for dataset in entry.datasets:
            for column in run.gated_columns():
                v = run.values(entry.label, dataset, column)
                if len(v) == 0:
                    continue  # never computed here (e.g. label_accuracy of an unconditional GAN)
                if len(v) < len(spec.seeds):
                    raise UsageError(f"{where}: {entry.label} · {dataset} · {column} has a value "
                                     f"for {len(v)} of {len(spec.seeds)} seeds")  # fmt: skip
                mean, std = float(v.mean()), float(v.std(ddof=1))
                abs_floor = widths.get(column, widths.get(column.split("/")[0], 0.0))
                half = max(k * std, floor * abs(mean), abs_floor)
                bands.append({
                    "variant": entry.label, "dataset": dataset, "metric": column,
                    "higher_is_better": column_direction(column), "mean": mean, "std": std,
                    "low": mean - half, "high": mean + half, "values": v.tolist(),
                })  # fmt: skip
    results = claims_mod.check_all(spec.claims, run.final, spec.datasets[0])
    failing = [r for r in results if not r.holds]
    if failing:
        raise UsageError(
            f"{where}: the suite's claims must hold in the run a baseline is made from; "
            + "; ".join(f"'{r.claim.describe()}' {r.statement()}" for r in failing)
            + ". Fix the code or the claim in the suite file, then make the baseline again."
        )
    return {
        "format": FORMAT,
        "suite": run.suite.name,
        "profile": run.suite.profile,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": str(run.run_dir),
        "commit": run.env.get("git", {}).get("commit"),
        "seeds": list(spec.seeds),
        "k": k,
        "min_rel_width": floor,
        "min_abs_width": widths,
        "machine": run.machine(),
        "backbones": run.backbones(),
        "config": measurement_config(run.config),
        "bands": bands,
        "claims": [
            {
                "claim": r.claim.describe(),
                "dataset": r.dataset,
                "variant_mean": r.variant.mean,
                "than_mean": r.than.mean if r.than else r.claim.than,
                "p_value": r.p_value,
            }
            for r in results
        ],  # fmt: skip
    }


def read_baseline(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"no baseline at {path}; make one with `nox -s baseline` "
                         "(or `bench baseline suite=NAME`)")  # fmt: skip
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise UsageError(f"{path}: baseline format {data.get('format')} is not {FORMAT}; "
                         "make it again with `nox -s baseline`")  # fmt: skip
    return data


# --- Comparing a run with a baseline -------------------------------------------------------------

# Top-level keys of a run's config.json that do not describe how its numbers were made.
NOT_MEASUREMENT = {
    "suite_file",
    "with",
    "overrides",
    "entries",
    "seeds",
    "claims",
    "regress",
    "tuning",
}


def measurement_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in NOT_MEASUREMENT}


# Suite keys added after baselines were made, with the value every suite had before them.
KEYS_ADDED_LATER = {
    "task": "generation", "eval.batch_norm": "batch", "eval.batch_size": 4096,
    "eval.likelihood_samples": 1000, "eval.iwae_k": 100,
    "eval.ppl_samples": 1000, "eval.ppl_epsilon": 1e-4, "eval.ppl_sampling": "full",
    "eval.binarize": "threshold", "eval.qn_min_steps": 3,
}  # fmt: skip


def config_changes(before: dict[str, Any], after: dict[str, Any], labels: set[str]) -> list[str]:
    """Dotted keys that can alter results and differ, counting only the variant entries in `labels`."""

    def flat(config: dict[str, Any]) -> dict[str, Any]:
        variants = {k: v for k, v in config.get("variants", {}).items() if k in labels}
        return {**KEYS_ADDED_LATER, **flatten({**measurement_config(config), "variants": variants})}

    a, b = flat(before), flat(after)
    return sorted(
        k for k in a.keys() | b.keys() if k not in RESULT_NEUTRAL and a.get(k) != b.get(k)
    )


@dataclass(frozen=True)
class Outcome:
    failures: list[str]  # every metric outside its band, claim that does not hold, cell not ok
    passed: list[str]
    notes: list[str]  # differences that do not fail the gate but qualify it


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def compare(baseline: dict[str, Any], run: RunView) -> Outcome:
    """Every band of the baseline whose entry the run trained, and every claim of the run's suite."""
    failures, passed, notes = [], [], []
    spec = run.suite.spec
    trained = {(e.label, d) for e in run.suite.entries for d in e.datasets}
    failures += [f"cell {c}" for c in run.not_ok()]

    # What differs from the baseline's measurement: reported, since it qualifies every band.
    if list(spec.seeds) != baseline["seeds"]:
        notes.append(f"seeds {list(spec.seeds)} differ from the baseline's {baseline['seeds']}")
    changed = config_changes(baseline["config"], run.config, {label for label, _ in trained})
    if changed:
        old_flat, new_flat = flatten(baseline["config"]), flatten(run.config)
        notes.append("configuration differs from the baseline's in " + ", ".join(
            f"{k} ({old_flat.get(k)!r} → {new_flat.get(k)!r})" for k in changed))  # fmt: skip
    machine = run.machine()
    for key, value in baseline["machine"].items():
        if machine.get(key) != value:
            notes.append(f"{key}: {machine.get(key)!r} here, {value!r} in the baseline")
    backbones = run.backbones()
    for name, sha in baseline["backbones"].items():
        if backbones.get(name, sha) != sha:
            notes.append(f"backbone {name} has other weights than the baseline's (sha256 "
                         f"{backbones[name][:12]}… vs {sha[:12]}…): its metrics are not comparable")  # fmt: skip

    # Bands.
    for band in baseline["bands"]:
        where = f"{band['variant']} · {band['dataset']} · {band['metric']}"
        if (band["variant"], band["dataset"]) not in trained:
            continue
        v = run.values(band["variant"], band["dataset"], band["metric"])
        if len(v) == 0:
            failures.append(f"{where}: not computed in this run (baseline {_fmt(band['mean'])})")
            continue
        value = float(v.mean())
        interval = f"[{_fmt(band['low'])}, {_fmt(band['high'])}]"
        if band["low"] <= value <= band["high"]:
            passed.append(f"{where} = {_fmt(value)} within {interval}")
            continue
        above = value > band["high"]
        better = band["higher_is_better"]
        verdict = "" if better is None else (", better" if above == better else ", worse")
        failures.append(
            f"{where} = {_fmt(value)} is {'above' if above else 'below'} its band {interval}"
            f"{verdict} (baseline {_fmt(band['mean'])} ± {baseline['k']:g}·{_fmt(band['std'])} "
            f"over seeds {','.join(map(str, baseline['seeds']))}; this run: mean of {len(v)} seeds)"
        )
    banded = {(b["variant"], b["dataset"]) for b in baseline["bands"]}
    if banded - trained:
        notes.append("not run, so not checked: "
                     + ", ".join(f"{v} · {d}" for v, d in sorted(banded - trained)))  # fmt: skip
    if trained - banded:
        notes.append("no band in the baseline, so not checked: "
                     + ", ".join(f"{v} · {d}" for v, d in sorted(trained - banded))
                     + " (nox -s baseline adds them)")  # fmt: skip

    # Claims, as the suite file states them now.
    for result in claims_mod.check_all(spec.claims, run.final, spec.datasets[0]):
        line = f"claim '{result.claim.describe()}' {result.statement()}"
        (passed if result.holds else failures).append(line)
    return Outcome(failures, passed, notes)


# --- Showing what a new baseline changes ---------------------------------------------------------


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Lines saying how `new` differs from `old`: bands added, removed, moved; seeds, k, machine."""
    if old is None:
        return [f"new baseline: {len(new['bands'])} bands, {len(new['claims'])} claims"]
    lines = []
    for key in ("seeds", "k", "min_rel_width", "min_abs_width", "machine", "backbones"):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {old.get(key)} → {new.get(key)}")

    def key(b: dict) -> tuple[str, str, str]:
        return b["variant"], b["dataset"], b["metric"]

    before, after = {key(b): b for b in old["bands"]}, {key(b): b for b in new["bands"]}
    for k in sorted(before.keys() - after.keys()):
        lines.append(f"removed {' · '.join(k)}")
    for k in sorted(after.keys() - before.keys()):
        b = after[k]
        lines.append(
            f"added {' · '.join(k)}: {_fmt(b['mean'])} [{_fmt(b['low'])}, {_fmt(b['high'])}]"
        )
    for k in sorted(before.keys() & after.keys()):
        a, b = before[k], after[k]
        if (a["mean"], a["low"], a["high"]) != (b["mean"], b["low"], b["high"]):
            if a["mean"] == b["mean"]:
                change = "mean unchanged, band changed"
            elif a["mean"]:
                change = f"{(b['mean'] - a['mean']) / abs(a['mean']):+.1%}"
            else:
                change = "from 0"
            lines.append(
                f"{' · '.join(k)}: {_fmt(a['mean'])} [{_fmt(a['low'])}, {_fmt(a['high'])}] → "
                f"{_fmt(b['mean'])} [{_fmt(b['low'])}, {_fmt(b['high'])}] ({change})"
            )
    claims_before = {c["claim"] for c in old["claims"]}
    claims_after = {c["claim"] for c in new["claims"]}
    lines += [f"claim removed: {c}" for c in sorted(claims_before - claims_after)]
    lines += [f"claim added: {c}" for c in sorted(claims_after - claims_before)]
    return lines or ["no change in any band or claim"]
