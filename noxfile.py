"""Sessions: `nox -s bench -- suite=NAME`, `nox -s tune -- suite=NAME trials=N`, `nox -s tests`,
`nox -s lint` (`nox -l` lists them)."""

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"  # a second run reuses the environment instead of reinstalling torch

# The torch/torchvision pair that this project's machines install from local disk; other pairs
# download several GB or fail to import together.
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def install(session: nox.Session, extras: str = "") -> None:
    session.install(*TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Run a suite: nox -s bench -- suite=NAME [profile=P] [seeds=0,1,2] [key=value ...]."""
    install(session)
    session.run("bench", "run", *session.posargs)


@nox.session
def tune(session: nox.Session) -> None:
    """Tune a suite with Optuna: nox -s tune -- suite=NAME trials=N [storage=URL] [compare=K]."""
    install(session)
    session.run("bench", "tune", *session.posargs)


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
    install(session, "test,offline-inception")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and format)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
