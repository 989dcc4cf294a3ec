"""Killed, failed and interrupted runs resume to the same numbers as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench import checkpoint
from bench.results import TIMING_COLUMNS
from tests.conftest import TINY_SUITE

TIMING = list(TIMING_COLUMNS)
SUITE = TINY_SUITE.replace("gen_steps = 6", "gen_steps = 40").replace("every = 3", "every = 10")

# Code that every process of a run executes at start-up (through PYTHONPATH), to make the N-th call
# of a function die with SIGKILL or fail like a full disk, in whichever worker makes that call.
FAULTS = {
    "kill during a training step": ("variants.wgan_gp", "WGANGP", "train_step", 25, "kill"),
    "kill during an evaluation": ("bench.diagnostics", None, "clip_saturation", 3, "kill"),
    "kill while writing a checkpoint": ("bench.checkpoint", None, "atomic_write_bytes", 2, "half"),
    "disk full at a checkpoint": ("bench.checkpoint", None, "atomic_write_bytes", 2, "enospc"),
}
SITECUSTOMIZE = """
import errno, importlib, os, signal
from bench.io import atomic_write

module = importlib.import_module({module!r})
owner = getattr(module, {owner!r}) if {owner!r} else module
original = getattr(owner, {name!r})
calls = 0

def faulty(*args, **kwargs):
    global calls
    calls += 1
    if calls == {n}:
        if {how!r} == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if {how!r} == "half":  # leave a half-written temporary file, as a kill mid-write would
            path, data = args
            atomic_write(path, lambda f: (f.write(data[: len(data) // 2]), f.flush(),
                                          os.kill(os.getpid(), signal.SIGKILL)))
        if {how!r} == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return original(*args, **kwargs)

setattr(owner, {name!r}, faulty)
"""


def run(tmp_path: Path, *args: str, faults: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if faults:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(faults), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def assert_same_run(a: Path, b: Path) -> None:
    da, db = (pd.read_csv(d / "results.csv").drop(columns=TIMING, errors="ignore") for d in (a, b))
    pd.testing.assert_frame_equal(da, db, check_exact=True)
    cells = sorted(p.name for p in (a / "cells").iterdir())
    assert cells == sorted(p.name for p in (b / "cells").iterdir())
    for cell in cells:
        wa = torch.load(a / "cells" / cell / "generator.pt", weights_only=True)
        wb = torch.load(b / "cells" / cell / "generator.pt", weights_only=True)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), cell


def assert_every_file_complete(run_dir: Path, allow_tmp: bool = False) -> None:
    """Every file is complete and readable; `.NAME.*.tmp` files are unfinished atomic writes."""
    for path in run_dir.rglob("*"):
        if path.is_dir() or (allow_tmp and path.name.startswith(".") and path.suffix == ".tmp"):
            continue
        assert not path.name.endswith(".tmp"), f"left-over temporary file {path}"
        if path.suffix == ".pt":
            torch.load(path, weights_only=True)
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".parquet":
            pd.read_parquet(path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("reference")
    (tmp / "tiny.toml").write_text(SUITE)
    proc = run(tmp, "run", f"suite={tmp / 'tiny.toml'}", f"out={tmp / 'run'}")
    assert proc.returncode == 0, proc.stderr
    return tmp / "run"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_then_resume_gives_the_uninterrupted_numbers(fault, reference, tmp_path):
    module, owner, name, n, how = FAULTS[fault]
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "sitecustomize.py").write_text(
        textwrap.dedent(SITECUSTOMIZE).format(module=module, owner=owner, name=name, n=n, how=how)
    )
    (tmp_path / "tiny.toml").write_text(SUITE)
    out = tmp_path / "run"

    broken = run(tmp_path, "run", f"suite={tmp_path / 'tiny.toml'}", f"out={out}", faults=faults)
    assert broken.returncode == 1, broken.stderr  # some cells failed, the run itself completed
    df = pd.read_csv(out / "results.csv")
    final = df.groupby(["variant", "seed"]).tail(1)
    assert "failed" in set(final["status"])
    if how == "enospc":
        assert final["note"].str.contains("No space left on device").any()
    # Whatever was interrupted kept a readable checkpoint (or none, if it never reached one).
    for cell in (out / "cells").iterdir():
        state = checkpoint.load(cell / checkpoint.CHECKPOINT_NAME)
        assert state is None or state["step"] in (10, 20, 30, 40)

    resumed = run(tmp_path, "resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(reference, out)
    assert_every_file_complete(out)


@pytest.mark.parametrize("rows", [3, 10])
def test_whole_run_killed_then_resumed_gives_the_uninterrupted_numbers(rows, reference, tmp_path):
    from tests.test_runner import start_run, wait_for_rows

    (tmp_path / "tiny.toml").write_text(SUITE)
    out = tmp_path / "run"
    proc = start_run(tmp_path, tmp_path / "tiny.toml", out)
    try:
        wait_for_rows(out, rows)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert_every_file_complete(out, allow_tmp=True)
    resumed = run(tmp_path, "run", f"suite={tmp_path / 'tiny.toml'}", f"out={out}", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(reference, out)
    assert_every_file_complete(out)


def test_resume_of_a_finished_run_changes_nothing(reference, tmp_path):
    before = (reference / "results.csv").read_text()
    proc = run(tmp_path, "resume", str(reference))
    assert proc.returncode == 0, proc.stderr
    assert (reference / "results.csv").read_text() == before


def test_resume_refuses_a_suite_changed_in_a_way_that_alters_results(reference, tmp_path):
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(SUITE)
    changed = run(tmp_path, "run", f"suite={suite_file}", f"out={reference}", "resume=true",
                  "variants.wgan_gp.gp_weight=1.0")  # fmt: skip
    assert changed.returncode == 2
    assert "variants.wgan_gp.gp_weight" in changed.stderr and "cannot be resumed" in changed.stderr
    harmless = run(tmp_path, "run", f"suite={suite_file}", f"out={reference}", "resume=true",
                   "workers=1")  # fmt: skip
    assert harmless.returncode == 0, harmless.stderr


def test_resume_needs_a_run_folder(tmp_path):
    proc = run(tmp_path, "resume", str(tmp_path))
    assert proc.returncode == 2 and "not a run folder" in proc.stderr
