"""MLflow tracking against the embedded store and a real tracking server started on localhost."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import TINY_SUITE
from tests.test_runner import start_run, wait_for_rows

# Long enough (4 cells × 17 evaluations) for the server to go away in the middle of it.
OUTAGE_SUITE = TINY_SUITE.replace("gen_steps = 6", "gen_steps = 64").replace(
    "every = 3", "every = 4"
)
OUTAGE_STEPS = list(range(0, 65, 4))

CELLS = {"wgan · 8gaussians · seed 0", "wgan · 8gaussians · seed 1",
         "wgan_gp · 8gaussians · seed 0", "wgan_gp · 8gaussians · seed 1"}  # fmt: skip


class Server:
    """`mlflow server` on 127.0.0.1 with its own store; can be stopped and started again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root / 'store.db'}",
             "--artifacts-destination", str(self.root / "artifacts")],
            cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        pytest.fail("mlflow server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path / "server")
    srv.root.mkdir()
    srv.start()
    yield srv
    srv.stop()


def runs_of(client: MlflowClient, suite: str) -> tuple[list, list]:
    exp = client.get_experiment_by_name(suite)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def assert_complete_record(client: MlflowClient, out: Path, steps: list[int]) -> None:
    """One finished parent, one finished child per cell with params, tags, metrics and artifacts."""
    parents, children = runs_of(client, "tiny")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert {c.info.run_name for c in children} == CELLS
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    child = next(c for c in children if c.info.run_name == "wgan_gp · 8gaussians · seed 1")
    assert child.info.status == "FINISHED"
    assert child.data.params["variant.gp_weight"] == "0.1"
    assert child.data.params["budget.gen_steps"] == str(steps[-1])
    for tag in ["suite", "profile", "variant", "dataset", "seed", "git_commit", "git_dirty",
                "torch_version", "device", "threads", "run_folder", "dataset_hash"]:  # fmt: skip
        assert child.data.tags.get(tag), tag
    assert child.data.tags["run_folder"] == str(out.resolve())
    df = pd.read_csv(out / "results.csv")
    mine = df[(df["variant"] == "wgan_gp") & (df["seed"] == 1)]
    history = client.get_metric_history(child.info.run_id, "energy_distance")
    assert [m.step for m in history] == steps
    assert [m.value for m in history] == list(mine["energy_distance"])
    for key in ["clip_saturation", "wasserstein_estimate", "act_grad_norm/01", "loss/critic",
                "img_per_s", "peak_mem_mb"]:  # fmt: skip
        assert key in child.data.metrics, key
    assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {
        "results.csv", "weight_hist.npz", "samples.npz", "env.json"}  # fmt: skip
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "config.json", "env.json", "results.csv", "summary.md", "plots"}  # fmt: skip
    assert "final/wgan_gp/8gaussians/energy_distance/mean" in parent.data.metrics
    assert "final/wgan_gp/8gaussians/energy_distance/ci95" in parent.data.metrics


def test_embedded_store_needs_no_server(bench, write_suite, tmp_path):
    out = tmp_path / "run"
    rc, err = bench("run", f"suite={write_suite()}", f"out={out}")
    assert rc == 0, err
    store = tmp_path / "results" / "mlflow.db"
    assert store.is_file()
    assert_complete_record(MlflowClient(f"sqlite:///{store}"), out, [0, 3, 6])
    assert not (tmp_path / "mlruns").exists()  # artifacts stay under results/


def test_ui_compares_the_variants_of_the_latest_run(bench, write_suite, tmp_path):
    from bench.ui import compare_url

    rc, err = bench("run", f"suite={write_suite()}", f"out={tmp_path / 'run'}")
    assert rc == 0, err
    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    client = MlflowClient(uri)
    _, children = runs_of(client, "tiny")
    seed0 = {c.info.run_id for c in children if c.data.tags["seed"] == "0"}
    url = compare_url(uri, "http://127.0.0.1:5000", "tiny")
    assert url.startswith("http://127.0.0.1:5000/#/compare-runs?runs=[")
    listed = set(url.split("runs=[")[1].split("]")[0].replace('"', "").split(","))
    assert listed == seed0 and len(listed) == 2  # wgan and wgan_gp, same dataset and seed


def test_real_server_receives_the_whole_run(server, bench, write_suite, tmp_path):
    out = tmp_path / "run"
    rc, err = bench("run", f"suite={write_suite()}", f"out={out}", f"tracking.uri={server.url}")
    assert rc == 0, err
    assert "tracking" not in err
    assert_complete_record(MlflowClient(server.url), out, [0, 3, 6])


def test_server_outage_loses_nothing_and_sync_completes_the_record(server, write_suite, tmp_path):
    suite = write_suite(
        OUTAGE_SUITE.replace("[train]", f'[tracking]\nuri = "{server.url}"\n\n[train]')
    )
    out = tmp_path / "run"
    proc = start_run(tmp_path, suite, out)
    wait_for_rows(out, 12)
    server.stop()  # the tracking server goes away in the middle of the suite
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert err.count("tracking to") == 1 and "bench sync" in err  # reported once, not per row
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 * len(OUTAGE_STEPS) and set(df["status"]) == {"ok"}  # nothing lost locally

    server.start()
    steps = OUTAGE_STEPS
    sync = subprocess.run([sys.executable, "-m", "bench", "sync", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert sync.returncode == 0, sync.stderr
    client = MlflowClient(server.url)
    assert_complete_record(client, out, steps)

    # A second sync sends nothing new: no extra runs, no repeated metric points.
    again = subprocess.run([sys.executable, "-m", "bench", "sync", str(out)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert_complete_record(client, out, steps)
    parents, children = runs_of(client, "tiny")
    assert len(parents) == 1 and len(children) == 4


def test_sync_reports_an_unreachable_server(bench, write_suite, tmp_path):
    out = tmp_path / "run"
    rc, err = bench("run", f"suite={write_suite()}", f"out={out}", "tracking.enabled=false")
    assert rc == 0 and not (tmp_path / "results" / "mlflow.db").exists()
    rc, err = bench("sync", str(out), "tracking.uri=http://127.0.0.1:9")
    assert rc == 1 and "sync to http://127.0.0.1:9 failed" in err


def test_outage_across_a_killed_and_resumed_run(server, write_suite, tmp_path):
    suite = write_suite(
        OUTAGE_SUITE.replace("[train]", f'[tracking]\nuri = "{server.url}"\n\n[train]')
    )
    out = tmp_path / "run"
    proc = start_run(tmp_path, suite, out)
    try:
        wait_for_rows(out, 12)
        server.stop()
        wait_for_rows(out, 40)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # killed while tracking is down
        proc.wait()

    resumed = subprocess.run([sys.executable, "-m", "bench", "resume", str(out)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("tracking to") == 1  # still down: reported once, run completes
    assert len(pd.read_csv(out / "results.csv")) == 4 * len(OUTAGE_STEPS)

    server.start()
    sync = subprocess.run([sys.executable, "-m", "bench", "sync", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert sync.returncode == 0, sync.stderr
    assert_complete_record(MlflowClient(server.url), out, OUTAGE_STEPS)
