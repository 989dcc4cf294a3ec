"""End-to-end runs of small suites: results folder, determinism, divergence, report, atomic files."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.io import atomic_write_text
from bench.results import BASE_COLUMNS, TIMING_COLUMNS
from tests.conftest import TINY_SUITE

TIMING = list(TIMING_COLUMNS)


def run_tiny(bench, write_suite, tmp_path, name, *args, text=TINY_SUITE):
    out = tmp_path / name
    rc, err = bench("run", f"suite={write_suite(text)}", f"out={out}", *args)
    assert rc == 0, err
    return out


def test_results_folder_contents(bench, write_suite, tmp_path):
    out = run_tiny(bench, write_suite, tmp_path, "run")
    for name in [
        "config.json",
        "env.json",
        "suite.toml",
        "results.csv",
        "results.parquet",
        "summary.md",
    ]:
        assert (out / name).is_file(), name
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns[: len(BASE_COLUMNS)]) == BASE_COLUMNS
    assert list(df.columns[len(BASE_COLUMNS) : len(BASE_COLUMNS) + 4]) == [
        "modes_captured", "hq_fraction", "mode_kl", "energy_distance"]  # fmt: skip
    # 2 variants × 1 dataset × 2 seeds × evaluations at steps 0, 3, 6.
    assert len(df) == 12 and set(df["step"]) == {0, 3, 6} and set(df["status"]) == {"ok"}
    final = df[df["step"] == 6]
    assert (final["images_seen"] == 6 * 5 * 32).all()  # n_critic 5, batch 32
    assert (final["img_per_s"] > 0).all() and (final["peak_mem_mb"] > 0).all()
    assert final["clip_saturation"].notna().all() and final["act_grad_norm/03"].notna().all()
    assert pd.read_parquet(out / "results.parquet").equals(df)
    assert (out / "cells" / "wgan__8gaussians__s0" / "generator.pt").is_file()
    summary = (out / "summary.md").read_text()
    assert "± " in summary and "wgan_gp" in summary


def test_same_suite_and_seed_give_identical_numbers(bench, write_suite, tmp_path):
    a = run_tiny(bench, write_suite, tmp_path, "a")
    b = run_tiny(bench, write_suite, tmp_path, "b", "workers=1")  # other worker count, same threads
    da, db = (pd.read_csv(d / "results.csv").drop(columns=TIMING, errors="ignore") for d in (a, b))
    pd.testing.assert_frame_equal(da, db, check_exact=True)
    for cell in (a / "cells").iterdir():
        wa = torch.load(cell / "generator.pt", weights_only=True)
        wb = torch.load(b / "cells" / cell.name / "generator.pt", weights_only=True)
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), cell.name


def test_different_seeds_give_different_numbers(bench, write_suite, tmp_path):
    df = pd.read_csv(run_tiny(bench, write_suite, tmp_path, "run") / "results.csv")
    final = df[(df["step"] == 6) & (df["variant"] == "wgan")].set_index("seed")
    assert final.loc[0, "energy_distance"] != final.loc[1, "energy_distance"]


DIVERGING = TINY_SUITE.replace("[variants.wgan]", "[variants.wgan]\n\n[variants.exploding]\n"
                                "variant = \"gan\"\nlr = 1e30")  # fmt: skip


def test_diverging_cell_is_recorded_and_the_suite_completes(bench, write_suite, tmp_path):
    out = run_tiny(bench, write_suite, tmp_path, "run", text=DIVERGING)
    df = pd.read_csv(out / "results.csv")
    bad = df[df["variant"] == "exploding"]
    assert bad["status"].iloc[-1] == "diverged"
    assert "non-finite" in bad["note"].iloc[-1]
    assert bad["step"].iloc[-1] < 6
    others = df[df["variant"] != "exploding"]
    assert set(others["status"]) == {"ok"} and others["step"].max() == 6
    assert "diverged" in (out / "summary.md").read_text()


def test_report_rerenders_the_same_summary(bench, write_suite, tmp_path):
    out = run_tiny(bench, write_suite, tmp_path, "run")
    first = (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    for png in (out / "plots").glob("*.png"):
        png.unlink()
    rc, err = bench("report", str(out))
    assert rc == 0, err
    assert (out / "summary.md").read_text() == first
    assert {p.name for p in (out / "plots").glob("*.png")} >= {
        "weight_hist.png",
        "curves_8gaussians.png",
    }


def test_report_refuses_a_folder_that_is_not_a_run(bench, tmp_path):
    rc, err = bench("report", str(tmp_path))
    assert rc == 2 and "not a run folder" in err


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "results.csv"
    atomic_write_text(path, "old\n")

    class Boom(Exception):
        pass

    def failing_write(f):
        f.write(b"half a ro")
        raise Boom

    from bench.io import atomic_write

    with pytest.raises(Boom):
        atomic_write(path, failing_write)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


# Long enough to be killed in the middle of; MLflow is off (tests/test_tracking.py covers it).
SLOW_SUITE = (
    TINY_SUITE.replace("gen_steps = 6", "gen_steps = 400")
    .replace("every = 3", "every = 2")
    .replace("[train]", "[tracking]\nenabled = false\n\n[train]")
)


def children(pid: int) -> list[int]:
    """Child process ids of `pid`, read from /proc."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def start_run(tmp_path: Path, suite: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", f"suite={suite}", f"out={out}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )  # fmt: skip


def wait_for_rows(out: Path, rows: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        csv = out / "results.csv"
        if csv.exists() and csv.read_text().count("\n") > rows:
            return
        time.sleep(0.05)
    pytest.fail("the run wrote no rows in time")


def workers_of(proc: subprocess.Popen) -> list[int]:
    # The spawned workers run multiprocessing.spawn; the resource tracker does not.
    return [
        pid
        for pid in children(proc.pid)
        if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    ]


@pytest.mark.parametrize("wait_rows", [2, 9])
def test_killed_run_leaves_a_readable_table(write_suite, tmp_path, wait_rows):
    out = tmp_path / "run"
    proc = start_run(tmp_path, write_suite(SLOW_SUITE), out)
    try:
        wait_for_rows(out, wait_rows)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the main process and its workers, mid-write or not
        proc.wait()
    df = pd.read_csv(out / "results.csv")
    assert len(df) >= wait_rows
    assert df[BASE_COLUMNS].notna().all().all()
    assert not df.duplicated(["variant", "dataset", "seed", "step"]).any()


def test_bench_list_output(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for text in ["wgan_gp", "family=wasserstein", "Gulrajani et al. 2017", "clip_value=0.01",
                 "8gaussians", "swissroll", "ring8", "grid25", "modes_captured",
                 "energy_distance", "wgan_vs_gp"]:  # fmt: skip
        assert text in out, text


def test_smoke_profile_of_the_first_workload(bench, tmp_path):
    out = tmp_path / "smoke"
    rc, err = bench("run", "suite=wgan_vs_gp", "profile=smoke", f"out={out}")
    assert rc == 0, err
    df = pd.read_csv(out / "results.csv")
    assert set(df["status"]) == {"ok"}
    assert df["variant"].nunique() == 7
    summary = (out / "summary.md").read_text()
    assert "Finding 1" in summary and "Finding 2" in summary


def test_a_killed_worker_fails_only_its_cell(write_suite, tmp_path):
    out = tmp_path / "run"
    proc = start_run(tmp_path, write_suite(SLOW_SUITE), out)
    try:
        wait_for_rows(out, 2)
        victims = workers_of(proc)
        assert len(victims) == 2
        os.kill(victims[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, err  # a failed cell makes the run exit non-zero
    df = pd.read_csv(out / "results.csv")
    final = df.groupby(["variant", "seed"]).tail(1)
    assert sorted(final["status"]) == ["failed", "ok", "ok", "ok"]
    failed = final[final["status"] == "failed"].iloc[0]
    assert "worker process died" in failed["note"]
    assert (final[final["status"] == "ok"]["step"] == 400).all()
    assert "failed" in (out / "summary.md").read_text()


def test_ctrl_c_stops_workers_and_keeps_rows(write_suite, tmp_path):
    out = tmp_path / "run"
    proc = start_run(tmp_path, write_suite(SLOW_SUITE), out)
    try:
        wait_for_rows(out, 2)
        workers = workers_of(proc)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal sends it to the whole process group
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "interrupted" in err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert len(pd.read_csv(out / "results.csv")) >= 2


def test_local_workers_are_placed_on_every_gpu_in_turn():
    from bench.runner import worker_devices

    assert worker_devices("cpu", 3, gpus=0) == ["cpu", "cpu", "cpu"]
    # train.workers per GPU: two GPUs with two workers each
    assert worker_devices("cuda", 2, gpus=2) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]


@pytest.mark.parametrize("command", ["run", "tune"])
def test_the_ray_executor_without_ray_is_refused_naming_the_extra(
    command, bench, write_suite, tmp_path, monkeypatch
):  # fmt: skip
    from tests.test_tune import TUNE_SUITE

    write_suite(TUNE_SUITE)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when it is not installed
    rc, err = bench(command, "suite=suites/tiny.toml", "executor=ray", "out=r")
    assert rc == 2
    assert "train.executor=ray needs Ray" in err and "pip install 'gan-bench[ray]'" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "results").exists()
