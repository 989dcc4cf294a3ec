"""Command line: `bench run | resume | sync | ui | report | list | tune | regress | baseline`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from bench import checkpoint
from bench.cluster import Cluster, connect, run_jobs_ray
from bench.config import (
    Eval,
    Suite,
    available_suites,
    load_suite,
    read_override_file,
    result_changes,
    select_entries,
    shown,
    suite_from_resolved,
)
from bench.datasets.images import ImageDataset, UnpairedImageDataset
from bench.env import environment, placement
from bench.errors import UsageError
from bench.io import atomic_write_json
from bench.registry import DATASETS, METRICS, TASKS, VARIANTS, load_all
from bench.results import ResultsTable, final_steps, read_results
from bench.runner import CellJob, jobs_for, run_jobs, worker_devices
from bench.tracking import Tracker, cell_id, resolve_uri

RESERVED = {"suite", "profile", "out", "resume", "with", "entries"}
TUNE_OPTIONS = {"trials", "storage", "compare"}
SHORTCUTS = {"device": "train.device", "workers": "train.workers", "threads": "train.threads",
             "executor": "train.executor"}  # fmt: skip
RESULTS_ROOT = Path("results") / "runs"


def parse_assignments(args: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split `key=value` arguments into run options (suite, profile, out) and config overrides."""
    options: dict[str, str] = {}
    overrides: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UsageError(
                f"argument '{arg}' is not of the form key=value "
                "(e.g. suite=wgan_vs_gp profile=smoke seeds=0,1 budget.gen_steps=100)"
            )
        if key in RESERVED:
            options[key] = value
        else:
            overrides[SHORTCUTS.get(key, key)] = value
    if "suite" not in options:
        raise UsageError(f"missing suite=NAME; known suites: {', '.join(available_suites())}")
    return options, overrides


def new_run_dir(suite: str, out: str | None) -> Path:
    """Create the run folder: `out`, or the next results/runs/<NNNNN>-<suite>."""
    if out:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(f"out={out}: exists and is not an empty folder; choose a new folder")
        path.mkdir(parents=True, exist_ok=True)
        return path
    RESULTS_ROOT.mkdir(parents=True, exist_ok=True)
    while True:
        numbers = [int(p.name[:5]) for p in RESULTS_ROOT.iterdir() if p.name[:5].isdigit()]
        path = RESULTS_ROOT / f"{max(numbers, default=0) + 1:05d}-{suite}"
        try:
            path.mkdir()  # exclusive: two runs started together never share a folder
            return path
        except FileExistsError:
            continue


def _layers(options: dict[str, str]) -> list[tuple[str, dict]]:
    """The override files of `with=A.toml,B.toml`, in order."""
    files = [f for f in options.get("with", "").split(",") if f]
    return [read_override_file(f) for f in files]


def _entries(options: dict[str, str]) -> list[str]:
    return [e for e in options.get("entries", "").split(",") if e]


def cmd_run(args: list[str]) -> int:
    options, overrides = parse_assignments(args)
    return run_suite(options, overrides)[0]


def run_suite(options: dict[str, str], overrides: dict[str, str]) -> tuple[int, Path]:
    """Run (or with resume=true finish) a suite; returns the exit code and the run folder."""
    layers = _layers(options)
    suite = load_suite(options["suite"], options.get("profile"), overrides, layers)
    if _entries(options):
        suite = select_entries(suite, _entries(options))
    resume = options.get("resume", "false")
    if resume not in ("true", "false"):
        raise UsageError(f"resume={resume}: must be true or false")
    if resume == "true":
        if "out" not in options:
            raise UsageError("resume=true needs out=RUN_DIR, the folder to finish")
        return _resume(Path(options["out"]), suite), Path(options["out"])
    _check_data(suite)
    device, workers, threads, cluster = _place(suite)

    # Everything is validated: only now is a run folder created.
    run_dir = new_run_dir(suite.name, options.get("out"))
    resolved = {**suite.resolved(), "device": device, "overrides": overrides,
                "with": [{"file": name, "table": table} for name, table in layers],
                "entries": _entries(options)}  # fmt: skip
    atomic_write_json(run_dir / "config.json", resolved)
    shutil.copyfile(suite.path, run_dir / "suite.toml")
    executor = cluster.describe() if cluster else None
    atomic_write_json(run_dir / "env.json", environment(device, workers, threads, executor))
    print(f"bench: {len(suite.cells())} cells of suite '{suite.name}' (profile {suite.profile}) "
          f"→ {shown(run_dir)}", file=sys.stderr)  # fmt: skip
    return _execute(suite, run_dir, device, workers, threads, cluster, resume=False), run_dir


def _place(suite: Suite) -> tuple[str, int, int, Cluster | None]:
    """(device, workers, threads, the Ray cluster or None) for a run of `suite`."""
    train = suite.spec.train
    if train.executor == "local":
        return (*placement(suite), None)
    cluster = connect(
        suite.spec.ray.address, train.device, train.cpus_per_cell, train.gpus_per_cell
    )
    return cluster.device, train.workers, train.threads, cluster


def cmd_resume(run_dir: str, args: list[str]) -> int:
    """Finish an interrupted run with the configuration stored in its folder."""
    workers = None
    for arg in args:
        key, _, value = arg.partition("=")
        if key != "workers" or not value.isdigit():
            raise UsageError(f"bench resume: '{arg}' not allowed; only workers=N may change")
        workers = int(value)
    path = Path(run_dir)
    stored = _stored_suite(path)
    # The suite file as it is now must agree with the run in everything that can change results.
    if stored.path.is_file():
        current = _current_suite(path, stored)
    else:
        current = stored  # the file is gone: the folder's own configuration is all there is
    if workers is not None:
        train = current.spec.train.model_copy(update={"workers": workers})
        current = dataclasses.replace(
            current, spec=current.spec.model_copy(update={"train": train})
        )
    return _resume(path, current)


def _check_data(suite: Suite) -> None:
    """Every dataset is built, and fits every variant that trains on it, before any folder exists."""
    built = {}
    for entry in suite.entries:
        for name in entry.datasets:
            if name not in built:
                built[name] = DATASETS.get(name)()  # a missing dataset is reported here
            problem = VARIANTS.get(entry.variant).data_problem(built[name].spec, entry.config)
            if problem:
                raise UsageError(
                    f"variants.{entry.label} cannot train on '{name}': {problem}; resize the "
                    "images or pick another variant"
                )


def _resume(run_dir: Path, current: Suite) -> int:
    stored = _stored_suite(run_dir)
    changed = result_changes(stored, current)
    if changed:
        raise UsageError(
            f"{shown(run_dir)}: the suite differs from the one this run started with in "
            f"{', '.join(changed)}; these can change results, so the run cannot be resumed with "
            "them. Restore the suite file, or start a new run."
        )
    device, workers, threads, cluster = _place(current)
    if device != json.loads((run_dir / "config.json").read_text())["device"]:
        raise UsageError(f"{shown(run_dir)}: started on another device; resume it on the same kind")
    env_path = run_dir / "env.json"
    env = json.loads(env_path.read_text())
    executor = cluster.describe() if cluster else None
    env.setdefault("resumed", []).append(environment(device, workers, threads, executor))
    atomic_write_json(env_path, env)
    print(f"bench: resuming {shown(run_dir)}", file=sys.stderr)
    return _execute(current, run_dir, device, workers, threads, cluster, resume=True)


def _stored_suite(run_dir: Path) -> Suite:
    config = run_dir / "config.json"
    if not config.is_file():
        raise UsageError(f"{run_dir}: not a run folder (no config.json in it)")
    return suite_from_resolved(json.loads(config.read_text()), where=str(config))


def _current_suite(run_dir: Path, stored: Suite) -> Suite:
    """The run's suite file as it reads now, with the overrides, layers and entries the run used."""
    config = json.loads((run_dir / "config.json").read_text())
    layers = [(layer["file"], layer["table"]) for layer in config.get("with", [])]
    current = load_suite(str(stored.path), stored.profile, config.get("overrides", {}), layers)
    return select_entries(current, config["entries"]) if config.get("entries") else current


def _execute(
    suite: Suite, run_dir: Path, device: str, workers: int, threads: int, cluster: Cluster | None,
    resume: bool,
) -> int:  # fmt: skip
    jobs = jobs_for(suite, run_dir, device)
    table = ResultsTable(run_dir, metric_order=list(suite.spec.metrics))
    statuses: dict[str, str] = {}
    if resume:
        # The checkpoints are the record: rows after a cell's last checkpoint are made again.
        for stale in run_dir.rglob(".*.tmp"):
            stale.unlink()
        todo = []
        for job in jobs:
            state = checkpoint.load(Path(job.cell_dir) / checkpoint.CHECKPOINT_NAME)
            table.rows.extend(state["rows"] if state else [])
            if state and state["finished"]:
                statuses[job.cell_id] = state["finished"]
            else:
                todo.append(dataclasses.replace(job, resume=True))
        table.add([])
        jobs = todo

    tracking = suite.spec.tracking
    tracker = (
        Tracker(run_dir, resolve_uri(tracking.uri), tracking.log_weights)
        if tracking.enabled
        else None
    )
    steps_per_cell = suite.spec.budget.gen_steps
    done_steps: dict[str, int] = {}
    bar = tqdm(total=len(suite.cells()) * steps_per_cell, initial=len(statuses) * steps_per_cell,
               unit="step", desc=suite.name, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 10.0)  # fmt: skip

    def on_event(cell_id: str, kind: str, payload: object) -> None:
        if kind == "progress":
            done_steps[cell_id] = done_steps.get(cell_id, 0) + payload
            bar.update(payload)
        elif kind == "rows":
            table.add(payload)
            if tracker:
                tracker.log_rows(payload)
        elif kind == "restart":  # a lost Ray attempt: the cell goes on from its checkpoint
            job = by_id[cell_id]
            table.reset_cell(job.label, job.dataset, job.seed, payload)
            again = max((r["step"] for r in payload), default=0)
            bar.update(again - done_steps.get(cell_id, 0))
            done_steps[cell_id] = again
        elif kind == "done":
            statuses[cell_id] = payload
            if tracker:
                tracker.close_cell(cell_id, payload)
            bar.update(steps_per_cell - done_steps.get(cell_id, 0))  # a cell stopped early
            done_steps[cell_id] = steps_per_cell
            bar.set_postfix_str(f"cells {len(statuses)}/{len(suite.cells())}")

    by_id = {job.cell_id: job for job in jobs}
    _prepare_image_metrics(suite, jobs)  # here, once, before any cell starts (on any node)
    try:
        if cluster is not None:
            run_jobs_ray(jobs, cluster, threads, workers, suite.spec.train.retries, on_event)
        else:
            gpus = torch.cuda.device_count() if device == "cuda" else 0
            run_jobs(jobs, worker_devices(device, workers, gpus), threads, on_event)
    finally:
        bar.close()
        if table.rows:
            table.flush_parquet()

    from bench.report import render

    summary = render(run_dir)
    if tracker:  # send whatever has not reached MLflow yet (all of it, after an earlier outage)
        tracker.catch_up(table.frame(), statuses)
    bad = {c: s for c, s in statuses.items() if s != "ok"}
    print(f"bench: summary at {shown(summary)}", file=sys.stderr)
    if bad:
        print(f"bench: {len(bad)} cell(s) did not finish ok: "
              + ", ".join(f"{c} ({s})" for c, s in sorted(bad.items())), file=sys.stderr)  # fmt: skip
    return 1 if "failed" in bad.values() else 0


def _prepare_image_metrics(suite: Suite, jobs: list) -> None:
    """Train or convert backbones and cache real features once here, not in every worker at once."""
    from bench.metrics.images import ImageMetric

    names = [m for m in suite.spec.metrics if isinstance(METRICS.get(m), ImageMetric)]
    ev = suite.spec.eval
    for dataset_name in sorted({job.dataset for job in jobs}):
        dataset = DATASETS.get(dataset_name)()
        # What cells score against: the images, or each domain of an unpaired dataset, whose
        # held-out images are the outputs' sources (tasks/unpaired.py), so as many real images.
        if isinstance(dataset, ImageDataset):
            parts = [(dataset_name, dataset, ev.num_real or ev.num_samples)]
        elif isinstance(dataset, UnpairedImageDataset):
            parts = [(f"{dataset_name} domain {key}", part,
                      ev.num_real or min(ev.num_samples, len(part.split("held_out")[0])))
                     for key, part in dataset.domains.items()]  # fmt: skip
        else:
            parts = []
        for shown_name, part, num_real in parts if names else []:
            _prepare_backbones(shown_name, part, names, num_real, ev, jobs[0])


def _prepare_backbones(
    name: str, dataset: ImageDataset, metrics: list[str], num_real: int, ev: Eval, job: CellJob
) -> None:  # fmt: skip
    from bench.metrics.images import ImageEvaluator

    device = torch.device(job.device)
    if device.type == "cuda" and not torch.cuda.is_available():  # cells on a cluster's GPUs
        print(f"bench: no GPU here to prepare image metrics for {name}: the first cell on each "
              "node prepares them in the shared cache", file=sys.stderr)  # fmt: skip
        return
    print(f"bench: preparing image metrics for {name} (backbones {', '.join(ev.backbones)}; "
          "a domain classifier is trained once per machine and cached)", file=sys.stderr)  # fmt: skip
    evaluator = ImageEvaluator(
        dataset, metrics, list(ev.backbones), num_real, Path(job.cache_dir), device,
        ev.reference_split, ev.kid_subsets, ev.inception_weights,
    )  # fmt: skip
    for bb in evaluator.prepare():
        print(f"bench:   {bb.name}: weights sha256 {bb.weights_sha256[:12]}… "
              + " ".join(f"{k}={v}" for k, v in bb.info.items()), file=sys.stderr)  # fmt: skip


def cmd_sync(run_dir: str, args: list[str]) -> int:
    """Send a stored run to MLflow; what is there already is not sent again."""
    path = Path(run_dir)
    suite = _stored_suite(path)
    uri = suite.spec.tracking.uri
    for arg in args:
        key, _, value = arg.partition("=")
        if key not in ("tracking.uri", "uri") or not value:
            raise UsageError(f"bench sync: '{arg}' not allowed; only tracking.uri=URI")
        uri = value
    tracker = Tracker(path, resolve_uri(uri), suite.spec.tracking.log_weights)
    df = read_results(path)
    statuses = {cell_id(r): r["status"] for r in final_steps(df).to_dict("records")}
    try:
        tracker.sync(df, statuses)
    except Exception as exc:
        print(f"bench: sync to {tracker.uri} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"bench: {shown(path)} is in MLflow at {tracker.uri} (run {tracker.state['parent']})",
          file=sys.stderr)  # fmt: skip
    return 0


def cmd_ui(args: list[str]) -> int:
    """Start the MLflow UI on 127.0.0.1 for the tracking store (the embedded one by default)."""
    from bench import ui

    options = dict(arg.partition("=")[::2] for arg in args)
    unknown = set(options) - {"port", "tracking.uri", "screenshot", "suite"}
    if unknown or not options.get("port", "5000").isdigit():
        raise UsageError(
            "bench ui takes port=N, tracking.uri=URI, and screenshot=FILE.png [suite=NAME]"
        )
    uri = resolve_uri(options.get("tracking.uri"))
    port = int(options.get("port", "5000"))
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if "screenshot" in options:
        png = Path(options["screenshot"])
        url = ui.screenshot(uri, options.get("suite", "wgan_vs_gp"), png, port)
        print(f"bench: saved {png} of {url}", file=sys.stderr)
        return 0
    print(
        f"bench: MLflow UI for {uri} at http://127.0.0.1:{port} (Ctrl-C stops it)", file=sys.stderr
    )
    return subprocess.call(ui.ui_command(uri, port))


def cmd_report(run_dir: str) -> int:
    from bench.report import render

    path = Path(run_dir)
    if not (path / "results.csv").is_file() or not (path / "config.json").is_file():
        raise UsageError(f"{run_dir}: not a run folder (no results.csv and config.json in it)")
    print(f"bench: summary at {shown(render(path))}", file=sys.stderr)
    return 0


def cmd_tune(args: list[str]) -> int:
    """Tune every entry with a search space (same trials each); compare=K re-runs the best."""
    from bench.tuning.command import tune

    options, overrides = parse_assignments(args)
    tune_opts = {k: overrides.pop(k) for k in list(overrides) if k in TUNE_OPTIONS}
    if "resume" in options or "with" in options:
        raise UsageError("bench tune takes no resume= or with=; a study resumes by itself")
    suite = load_suite(options["suite"], options.get("profile"), overrides)
    trials = tune_opts.get("trials")
    if trials is not None and (not trials.isdigit() or int(trials) < 1):
        raise UsageError(f"trials={trials}: must be a positive whole number")
    compare = tune_opts.get("compare")
    seeds = None
    if compare is not None and compare != "false":
        if compare == "true":
            seeds = suite.spec.tuning.final_seeds if suite.spec.tuning else 0
        elif compare.isdigit() and int(compare) >= 2:
            seeds = int(compare)
        else:
            raise UsageError(f"compare={compare}: must be true, false or a number of seeds >= 2")
    entries = _entries(options) or None
    return tune(suite, int(trials) if trials else None, tune_opts.get("storage"), entries, seeds,
                options.get("out"))  # fmt: skip


def _split_gate_args(args: list[str], allowed: set[str]) -> tuple[dict[str, str], list[str]]:
    """Pull the gate's own options (speed=, baseline=, from=, threshold=) out of the arguments."""
    own: dict[str, str] = {}
    rest = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in allowed:
            own[key] = value
        else:
            rest.append(arg)
    return own, rest


def _print_outcome(title: str, outcome) -> int:
    print(title)
    for line in outcome.notes:
        print(f"  note: {line}")
    for line in outcome.passed:
        print(f"  ok    {line}")
    for line in outcome.failures:
        print(f"  FAIL  {line}")
    total = len(outcome.passed) + len(outcome.failures)
    if outcome.failures:
        print(f"FAILED: {len(outcome.failures)} of {total} checks")
        return 1
    print(f"passed: all {total} checks")
    return 0


def cmd_regress(args: list[str]) -> int:
    """Quality gate (suite=NAME: run it, compare with its baseline) or speed gate (speed=FILE)."""
    from bench import regress, speed

    own, rest = _split_gate_args(args, {"speed", "baseline", "from"})
    if "speed" in own:
        if rest or "from" in own:
            raise UsageError("bench regress speed=FILE takes only baseline=PATH besides")
        path = Path(own.get("baseline", speed.SPEED_BASELINE))
        outcome = speed.compare_speed(speed.read_speed_baseline(path), Path(own["speed"]))
        return _print_outcome(f"speed gate: {own['speed']} against {path}", outcome)

    options, overrides = parse_assignments(rest)
    suite = load_suite(options["suite"], options.get("profile"), overrides, _layers(options))
    path = Path(own.get("baseline", regress.baseline_path(suite.name, suite.profile)))
    baseline = regress.read_baseline(path)  # before any training: a missing baseline fails fast
    if "from" in own:
        if overrides or set(options) - {"suite", "profile"}:
            raise UsageError(
                "bench regress from=RUN_DIR judges a finished run as it is; leave out overrides "
                "and run options (entries=, out=, with=)"
            )
        run_dir, rc = Path(own["from"]), 0
    else:
        rc, run_dir = run_suite(options, overrides)
    outcome = regress.compare(baseline, regress.judged_by(regress.RunView.load(run_dir), suite))
    if rc != 0 and not outcome.failures:
        outcome.failures.append(f"the run exited with code {rc}")
    return _print_outcome(f"quality gate: {shown(run_dir)} against {path}", outcome)


def cmd_baseline(args: list[str]) -> int:
    """Make a baseline explicitly (suite=NAME or speed=FILE[,FILE…]) and show what it changes."""
    from bench import regress, speed
    from bench.io import atomic_write_json

    own, rest = _split_gate_args(args, {"speed", "from", "threshold"})
    if "speed" in own:
        if rest or "from" in own:
            raise UsageError("bench baseline speed=FILE[,FILE...] takes only threshold=FRACTION")
        try:
            threshold = float(own.get("threshold", speed.DEFAULT_THRESHOLD))
        except ValueError:
            threshold = -1.0
        if threshold <= 0:
            raise UsageError(f"threshold={own['threshold']}: must be a fraction > 0, e.g. 0.3")
        new = speed.make_speed_baseline([Path(f) for f in own["speed"].split(",") if f], threshold)
        path = speed.SPEED_BASELINE
        # Read as it is, not through read_speed_baseline: a baseline of an older kernel is replaced.
        old = json.loads(path.read_text()) if path.is_file() else None
        changes = speed.diff_speed(old, new)
    else:
        if "threshold" in own:
            raise UsageError("threshold= belongs to speed baselines; a suite's bands use regress.k")
        options, overrides = parse_assignments(rest)
        if "entries" in options:
            raise UsageError("a baseline covers every entry of the suite; leave out entries=")
        suite = load_suite(options["suite"], options.get("profile"), overrides, _layers(options))
        if "from" in own:
            run_dir = Path(own["from"])
        else:
            regress.check_seeds(suite, f"suite '{suite.name}'")  # before hours of training
            rc, run_dir = run_suite(options, overrides)
            if rc != 0:
                print(
                    f"bench: the run failed (exit code {rc}); no baseline written", file=sys.stderr
                )
                return 1
        new = regress.make_baseline(regress.judged_by(regress.RunView.load(run_dir), suite))
        path = regress.baseline_path(new["suite"], new["profile"])
        old = json.loads(path.read_text()) if path.is_file() else None
        changes = regress.diff(old, new)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, new)
    print(f"baseline written to {path}; changes:")
    print("\n".join(f"  {line}" for line in changes))
    return 0


def cmd_list() -> int:
    load_all()
    print("Tasks (a suite's `task`):")
    for name in TASKS.names():
        task = TASKS.get(name)
        print(f"  {name:<18} {task.description} (variants that can: {task.needs}; data: "
              f"{task.data_kind})")  # fmt: skip
    print("Variants:")
    for name in VARIANTS.names():
        cls = VARIANTS.get(name)
        defaults = ", ".join(f"{k}={v}" for k, v in cls.Config().model_dump().items())
        print(
            f"  {name:<10} family={cls.family}  can: {', '.join(sorted(cls.capabilities))}  "
            f"paper: {cls.paper}\n  {'':<10} defaults: {defaults}"
        )
    print("Datasets:")
    for name in DATASETS.names():
        doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()[0]
        print(f"  {name:<12} {doc}")
    from bench.datasets import folders

    print(f"  (any other name: the folder of that name under the data root; {folders.LAYOUTS})")
    print("Metrics:")
    for name in METRICS.names():
        m = METRICS.get(name)
        print(
            f"  {name:<16} {'higher' if m.higher_is_better else 'lower'} is better; {m.description}"
        )
    print("Suites:")
    for name, path in available_suites().items():
        try:
            suite = load_suite(str(path))
            about = " ".join(suite.spec.description.split())
        except UsageError as exc:
            about = f"(invalid: {exc})"
        print(f"  {name:<12} {about}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and evaluate every cell of a suite")
    run.add_argument("assignments", nargs="*", metavar="key=value",
                     help="suite=NAME [profile=P] [seeds=0,1,2] [with=TUNED.toml] "
                          "[dotted.key=value ...] [out=DIR]")  # fmt: skip
    resume = sub.add_parser("resume", help="finish an interrupted run from its checkpoints")
    resume.add_argument("run_dir")
    resume.add_argument("assignments", nargs="*", metavar="workers=N")
    sync = sub.add_parser("sync", help="send a stored run to MLflow (what is there is not resent)")
    sync.add_argument("run_dir")
    sync.add_argument("assignments", nargs="*", metavar="tracking.uri=URI")
    ui = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1")
    ui.add_argument("assignments", nargs="*", metavar="port=N | screenshot=FILE.png")
    report = sub.add_parser("report", help="re-render summary.md and plots from a run folder")
    report.add_argument("run_dir")
    sub.add_parser("list", help="list variants, datasets, metrics and suites")
    tune = sub.add_parser(
        "tune", help="tune each variant entry with Optuna; compare=K re-runs the best"
    )
    tune.add_argument("assignments", nargs="*", metavar="key=value",
                      help="suite=NAME [profile=P] [trials=N] [storage=URL|journal:PATH] "
                           "[entries=a,b] [compare=K] [out=DIR] [dotted.key=value ...]")  # fmt: skip
    regress = sub.add_parser("regress", help="regression gates: a suite against its quality "
                             "baseline, or benchmark times against the speed baseline")  # fmt: skip
    regress.add_argument("assignments", nargs="*", metavar="key=value",
                         help="suite=NAME [profile=P] [entries=a,b] [from=RUN_DIR] "
                              "[baseline=PATH] [dotted.key=value ...] | speed=BENCH.json")  # fmt: skip
    baseline = sub.add_parser("baseline", help="refresh a quality or speed baseline and show "
                              "what changed")  # fmt: skip
    baseline.add_argument("assignments", nargs="*", metavar="key=value",
                          help="suite=NAME [profile=P] [from=RUN_DIR] [dotted.key=value ...] | "
                               "speed=BENCH.json[,BENCH2.json] [threshold=0.3]")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args.assignments)
        if args.command == "resume":
            return cmd_resume(args.run_dir, args.assignments)
        if args.command == "sync":
            return cmd_sync(args.run_dir, args.assignments)
        if args.command == "ui":
            return cmd_ui(args.assignments)
        if args.command == "report":
            return cmd_report(args.run_dir)
        if args.command == "tune":
            return cmd_tune(args.assignments)
        if args.command == "regress":
            return cmd_regress(args.assignments)
        if args.command == "baseline":
            return cmd_baseline(args.assignments)
        return cmd_list()
    except UsageError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; the rows written so far stay in the run folder", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
