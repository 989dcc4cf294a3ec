"""The MLflow UI on 127.0.0.1, and a screenshot of it comparing a suite's child runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.errors import UsageError

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1500", "--virtual-time-budget=15000",
]  # fmt: skip


def ui_command(uri: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip


def wait_until_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise UsageError(f"the MLflow UI at {url} did not answer within {timeout:.0f} s")


def compare_url(uri: str, base: str, suite: str) -> str:
    """The UI's compare view of the latest run of `suite`: its variants on one dataset and seed."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(suite)
    if exp is None:
        raise UsageError(f"no runs of suite '{suite}' in {uri}; run the suite first")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    parent = next((r for r in runs if "mlflow.parentRunId" not in r.data.tags), None)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    if not children:
        raise UsageError(f"the latest run of '{suite}' in {uri} has no cells to compare")
    first = min(children, key=lambda r: (r.data.tags["dataset"], int(r.data.tags["seed"])))
    same = [
        r.info.run_id
        for r in sorted(children, key=lambda r: r.info.run_name)
        if r.data.tags["dataset"] == first.data.tags["dataset"]
        and r.data.tags["seed"] == first.data.tags["seed"]
    ]
    runs_arg = json.dumps(same).replace(" ", "")
    return f'{base}/#/compare-runs?runs={runs_arg}&experiments=["{exp.experiment_id}"]'


def screenshot(uri: str, suite: str, png: Path, port: int) -> str:
    """Start the UI, photograph the compare view in headless Chromium, stop the UI; returns the URL."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise UsageError("screenshot needs Chromium on PATH (Debian: apt-get install chromium)")
    base = f"http://127.0.0.1:{port}"
    ui = subprocess.Popen(
        ui_command(uri, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_up(base)
        url = compare_url(uri, base, suite)
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--screenshot={Path(png).resolve()}", url],
                check=True, capture_output=True, timeout=180,
            )  # fmt: skip
        return url
    finally:
        ui.terminate()
        ui.wait()
