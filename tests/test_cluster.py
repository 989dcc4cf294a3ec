"""The Ray executor: the same results as local worker processes, on a real two-node local cluster,
with a node killed in the middle of a cell."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY_SUITE
from tests.test_resume import TIMING, assert_same_run

ray = pytest.importorskip("ray", reason="the Ray executor's tests need the ray extra")
psutil = pytest.importorskip("psutil")

RAY = str(Path(sys.executable).with_name("ray"))
# A cluster for tests only, on this machine: no token, and a dead node noticed within seconds.
CLUSTER_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}
# Long enough cells (a few seconds each) that a node can be killed between two checkpoints.
SUITE = (
    TINY_SUITE.replace("gen_steps = 6", "gen_steps = 150")
    .replace("every = 3", "every = 15")
    .replace("seeds = [0, 1]", "seeds = [0, 1, 2]")
    .replace("[variants.wgan_gp]\ngp_weight = 0.1\n", "")
    + "\n[tracking]\nenabled = false\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(procs: list) -> None:
    """SIGKILL processes and every child they have, children listed first (before reparenting)."""
    every = []
    for proc in procs:
        try:
            every += [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for proc in every:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@dataclass
class LocalCluster:
    address: str
    env: dict[str, str]

    def add_node(self, name: str) -> None:
        """Start one more node (1 CPU) on this machine, named `name`."""
        node = [RAY, "start", f"--address={self.address}", "--num-cpus=1", f"--node-name={name}",
                "--object-store-memory=80000000", "--disable-usage-stats"]  # fmt: skip
        subprocess.run(node, env=self.env, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node, 1 CPU each, on this machine; yields a LocalCluster."""
    temp = tempfile.mkdtemp(prefix="gbray", dir="/tmp")  # short: Ray's socket paths have a limit
    port = free_port()
    env = {**os.environ, **CLUSTER_ENV}
    head = [RAY, "start", "--head", f"--port={port}", "--num-cpus=1", f"--temp-dir={temp}",
            "--include-dashboard=false", f"--dashboard-port={free_port()}",
            "--object-store-memory=100000000",
            "--disable-usage-stats"]  # fmt: skip
    try:
        subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
        local = LocalCluster(f"127.0.0.1:{port}", env)
        local.add_node("second")
        yield local
    finally:  # this cluster's processes only (their command lines name its folder), and children
        kill_tree(
            [
                p
                for p in psutil.process_iter(["cmdline"])
                if temp in " ".join(p.info["cmdline"] or [])
            ]
        )


def bench(cwd: Path, *args: str, wait: bool = True):
    env = {**os.environ, **CLUSTER_ENV}
    command = [sys.executable, "-m", "bench", *args]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def attempts(run_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for path in (run_dir / "cells").glob("*/attempts.json"):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            continue
    return out


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The suite run uninterrupted by the local executor: the numbers every Ray run must match."""
    where = tmp_path_factory.mktemp("local")
    (where / "suites").mkdir()
    (where / "suites" / "tiny.toml").write_text(SUITE)
    done = bench(where, "run", "suite=suites/tiny.toml", "out=local")
    assert done.returncode == 0, done.stderr
    return where / "local"


def wait_for_cell(run_dir: Path, run: subprocess.Popen, on: str | None = None) -> tuple[str, str]:
    """(cell, node id) of a cell that has a checkpoint, in its current attempt (on node `on`)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        for cell, tries in attempts(run_dir).items():
            node = tries[-1].get("node", {})
            started = "ended" not in tries[-1] and node
            if (
                started
                and (on is None or node.get("name") == on)
                and (run_dir / "cells" / cell / "checkpoint.pt").is_file()
            ):
                return cell, node["node_id"]
        time.sleep(0.1)
    raise AssertionError(f"no running cell reached a checkpoint{f' on {on}' if on else ''}")


def ray_run(cluster: LocalCluster, *extra: str) -> list[str]:
    """`bench run` arguments for the suite on `cluster`, as many cells at once as its nodes hold."""
    return ["run", "suite=suites/tiny.toml", "out=ray", "executor=ray", "workers=0",
            f"ray.address={cluster.address}", *extra]  # fmt: skip


def run_and_kill_a_node(tmp_path: Path, cluster: LocalCluster, name: str, *extra: str):
    """Run the suite on the cluster plus a node `name`; kill that node once a cell on it has a
    checkpoint. Returns (the run's process, finished; the cell; the dead node's id)."""
    cluster.add_node(name)  # the node to kill: the other tests keep their two nodes
    run = bench(tmp_path, *ray_run(cluster, *extra), wait=False)
    cell, node_id = wait_for_cell(tmp_path / "ray", run, on=name)
    raylets = [p for p in psutil.process_iter(["cmdline"])
               if f"--node_id={node_id}" in " ".join(p.info["cmdline"] or [])]  # fmt: skip
    assert raylets, f"the raylet of node {name} was not found"
    kill_tree(raylets)
    run.communicate(timeout=240)
    return run, cell, node_id


@pytest.mark.cluster
def test_a_node_killed_mid_cell_costs_only_what_followed_its_checkpoint(
    tmp_path, write_suite, cluster, local_run
):  # fmt: skip
    write_suite(SUITE)
    run, victim, node_id = run_and_kill_a_node(tmp_path, cluster, "victim")
    assert run.returncode == 0

    # The lost cell started again from its checkpoint on another node, and every number is the same.
    tries = attempts(tmp_path / "ray")[victim]
    assert len(tries) == 2, tries
    assert "Died" in tries[0]["ended"] or "Crashed" in tries[0]["ended"], tries[0]
    assert tries[1]["resumed_from_step"] >= 15 and tries[1]["ended"] == "ok", tries
    assert tries[1]["node"]["node_id"] != node_id
    assert_same_run(local_run, tmp_path / "ray")
    env = json.loads((tmp_path / "ray" / "env.json").read_text())
    assert env["executor"]["kind"] == "ray" and env["executor"]["nodes"] == 3


@pytest.mark.cluster
def test_a_cell_lost_more_often_than_its_retries_is_failed_with_the_reason(
    tmp_path, write_suite, cluster, local_run
):  # fmt: skip
    write_suite(SUITE)
    run, victim, _ = run_and_kill_a_node(tmp_path, cluster, "victim0", "train.retries=0")
    assert run.returncode == 1  # a failed cell; the others finished
    final = pd.read_csv(tmp_path / "ray" / "results.csv").groupby("seed").tail(1)
    lost = final[final["seed"] == int(victim[-1])].iloc[0]
    assert lost["status"] == "failed" and lost["step"] >= 15
    assert "NodeDiedError" in lost["note"] and "gave up after 1 attempts" in lost["note"]
    others = final[final["seed"] != int(victim[-1])]
    assert len(others) == 2 and (others["status"] == "ok").all()
    reference = pd.read_csv(local_run / "results.csv").drop(columns=TIMING, errors="ignore")
    ok = pd.read_csv(tmp_path / "ray" / "results.csv").drop(
        columns=TIMING + ["note"], errors="ignore"
    )
    same = ok[ok["seed"] != int(victim[-1])].reset_index(drop=True)
    expected = reference[reference["seed"] != int(victim[-1])].reset_index(drop=True)
    # (dtype aside: the failed row has no images_seen, so that column reads as float)
    pd.testing.assert_frame_equal(same, expected[same.columns], check_exact=True, check_dtype=False)


@pytest.mark.cluster
def test_bench_resume_finishes_a_ray_run_whose_driver_was_killed(
    tmp_path, write_suite, cluster, local_run
):  # fmt: skip
    write_suite(SUITE)
    run = bench(tmp_path, *ray_run(cluster), wait=False)
    wait_for_cell(tmp_path / "ray", run)
    run.kill()  # the driver dies; Ray ends the tasks it owned
    run.communicate()
    resumed = bench(tmp_path, "resume", "ray")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(local_run, tmp_path / "ray")
    # The attempt the driver's death cut short stays listed; the next went on from its checkpoint.
    cut = {c: t for c, t in attempts(tmp_path / "ray").items() if "ended" not in t[0]}
    assert all(t[-1]["ended"] == "ok" for t in cut.values()), cut
    assert any(t[-1]["resumed_from_step"] >= 15 for t in cut.values()), cut
    assert (
        json.loads((tmp_path / "ray" / "env.json").read_text())["resumed"][0]["executor"]["kind"]
        == "ray"
    )


@pytest.mark.cluster
def test_a_cell_the_cluster_cannot_hold_is_refused_before_any_folder_exists(
    tmp_path, write_suite, cluster
):  # fmt: skip
    write_suite(SUITE)
    for extra, says in [("device=cuda", "has no GPU"), ("train.cpus_per_cell=4", "no node")]:
        run = bench(tmp_path, *ray_run(cluster, extra))
        assert run.returncode == 2 and says in run.stderr, run.stderr
        assert not (tmp_path / "ray").exists()


@pytest.mark.cluster
def test_tune_runs_its_trial_workers_as_ray_tasks_on_every_node(tmp_path, write_suite, cluster):
    from tests.test_tune import TUNE_SUITE, assert_exactly, trials_of

    # Both workers must get trials: unpruned trials of 300 steps outlast the second worker's start
    # (at 60 steps, with pruning, one worker ran all four before the other joined, 1 run in 6).
    suite = TUNE_SUITE.replace("gen_steps = 30", "gen_steps = 300").replace(
        "every = 10", "every = 100"
    )
    write_suite(suite.replace('pruner = "median"', 'pruner = "none"'))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    run = bench(tmp_path, "tune", "suite=suites/tiny.toml", "entries=wgan", "trials=4", f"storage={storage}",
                "executor=ray", "workers=2", f"ray.address={cluster.address}")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "2 trial workers as Ray tasks" in run.stderr
    trials = trials_of(storage, "tiny/wgan")
    assert_exactly(trials, 4)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    assert (tmp_path / "results" / "tuning" / "tiny" / "wgan.toml").is_file()
