"""Sessions: `nox -s bench -- suite=NAME`, `nox -s tune -- suite=NAME trials=N`, `nox -s tests`,
`nox -s regress`, `nox -s baseline`, `nox -s lint` (`nox -l` lists them)."""

import os
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"  # a second run reuses the environment instead of reinstalling torch

# The torch/torchvision pair that this project's machines install from local disk; other pairs
# download several GB or fail to import together.
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
# The speed gate's pytest-benchmark benchmarks: one training step of every variant, and evaluation.
BENCHMARKS = ["tests/test_bench_steps.py", "tests/test_bench_image_metrics.py"]
SPEED_RUNS = 3  # benchmark runs a speed baseline takes the median ratio of


def install(session: nox.Session, extras: str = "") -> None:
    session.install(*TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")


def extras_for(args: list[str]) -> str:
    """The `ray` extra when the arguments ask for the Ray executor, else none."""
    wants_ray = any(a in ("executor=ray", "train.executor=ray") for a in args)
    return "ray" if wants_ray else ""


@nox.session
def bench(session: nox.Session) -> None:
    """Run a suite: nox -s bench -- suite=NAME [profile=P] [seeds=0,1,2] [key=value ...]."""
    install(session, extras_for(session.posargs))
    session.run("bench", "run", *session.posargs)


@nox.session
def tune(session: nox.Session) -> None:
    """Tune a suite with Optuna: nox -s tune -- suite=NAME trials=N [storage=URL] [compare=K]."""
    install(session, extras_for(session.posargs))
    session.run("bench", "tune", *session.posargs)


@nox.session
def executors(session: nox.Session) -> None:
    """Benchmark: a suite's wall time under local workers and Ray, 1 and 2 cells at once."""
    install(session, "ray")
    session.run("python", "-m", "bench.executor_overhead", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Re-render summary.md and plots of a run folder: nox -s report -- results/runs/00001-NAME."""
    install(session)
    session.run("bench", "report", *session.posargs)


@nox.session
def ui(session: nox.Session) -> None:
    """Start the MLflow UI on 127.0.0.1 for results/mlflow.db (or MLFLOW_TRACKING_URI)."""
    install(session)
    session.run("bench", "ui", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest options after --)."""
    install(session, "test,offline-inception,ray")
    session.run("pytest", *session.posargs)


# The quality gates: at least one suite per task, together covering every registered variant.
QUALITY_SUITES = (
    "ci",
    "ci_paired",
    "ci_unpaired",
    "ci_superres",
    "ci_likelihood",
    "ci_anomaly",
    "ci_stylegan",
    "ci_music",
)


def run_benchmarks(session: nox.Session, json_path: str) -> None:
    """The speed gate's benchmarks, timed, each beside the calibration kernel (tests/conftest.py)."""
    # The mnist5k classifier the evaluation benchmarks need is trained once per machine and kept in
    # the project's cache (or GAN_BENCH_CACHE), not retrained in a temporary folder on every run.
    cache = os.environ.get("GAN_BENCH_CACHE", str(Path("results/cache").resolve()))
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    session.run("pytest", *BENCHMARKS, "-q", "-p", "no:cacheprovider", "--benchmark-enable",
                f"--benchmark-json={json_path}",
                env={"OMP_NUM_THREADS": "1", "GAN_BENCH_CACHE": cache})  # fmt: skip


@nox.session
def regress(session: nox.Session) -> None:
    """Regression gates: the quality suites against their baselines, benchmarks against speed.json."""
    install(session, "test")
    failed = []
    # Quality: every metric of each quality suite in its band, every claim of the suite holds.
    for suite in QUALITY_SUITES:
        try:
            session.run("bench", "regress", f"suite={suite}", *session.posargs)
        except CommandFailed:
            failed.append(f"quality ({suite})")
    json_path = "results/regress/benchmarks.json"
    run_benchmarks(session, json_path)
    try:  # speed: each benchmark's time / the calibration kernel's, against the saved ratio
        session.run("bench", "regress", f"speed={json_path}")
    except CommandFailed:
        failed.append("speed")
    if failed:
        session.error(f"the {' and '.join(failed)} gate failed (see above)")


@nox.session
def baseline(session: nox.Session) -> None:
    """Refresh the regression baselines explicitly and show what changed (never done by regress)."""
    install(session, "test")
    for suite in QUALITY_SUITES:
        session.run("bench", "baseline", f"suite={suite}", *session.posargs)
    paths = [f"results/regress/baseline-benchmarks-{i}.json" for i in range(SPEED_RUNS)]
    for path in paths:
        run_benchmarks(session, path)
    session.run("bench", "baseline", f"speed={','.join(paths)}")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and format)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
