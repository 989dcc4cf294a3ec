"""What the harness costs: DCGAN training throughput inside `bench run` against a bare loop.

The harness run is a real `bench run` (worker process, tracking on, evaluation only at the end
and outside the clock); its `train_seconds` is compared with a hand-written loop over the same
networks, optimisers, losses, batch size and data, timed the same way in a process of its own
with one torch thread. Runs alternate and the fastest of each is kept, so that load from other
processes inflates neither side. `python -m bench.overhead [steps] [repeats]` prints the ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

BATCH = 64

SUITE = """description = "harness overhead: dcgan on mnist5k, evaluation only after the clock"
seeds = [0]
datasets = ["mnist5k"]
metrics = []
[budget]
gen_steps = {steps}
[train]
batch_size = {batch}
workers = 1
threads = 1
[eval]
every = {steps}
at_start = false
num_samples = 64
diag_samples = 16
[variants.dcgan]
"""


def bare_loop(steps: int, seed: int = 0) -> float:
    """Seconds for `steps` DCGAN steps written by hand (no harness)."""
    import torch.nn.functional as F

    from bench.datasets.images import to_float
    from bench.registry import DATASETS, load_all
    from variants.dcgan import DCGANConfig
    from variants.nets import build_pair, resolve_arch

    load_all()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    dataset = DATASETS.get("mnist5k")()
    images, _ = dataset.split("train")
    cfg = resolve_arch(DCGANConfig(), dataset.spec)
    G, D = build_pair(cfg, dataset.spec)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    z_dim = cfg.z_dim
    g = torch.Generator().manual_seed(seed)

    def step() -> None:
        real = to_float(images[torch.randint(len(images), (BATCH,), generator=g)])
        z = torch.randn(BATCH, z_dim)
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(G(z).detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        g_loss = F.softplus(-D(G(torch.randn(BATCH, z_dim)))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)

    start = time.perf_counter()  # from the first step, as the harness's clock
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def harness_run(steps: int, workdir: Path) -> float:
    """`train_seconds` of a `bench run` of the same DCGAN (tracking to a local store)."""
    suite = workdir / "overhead.toml"
    suite.write_text(SUITE.format(steps=steps, batch=BATCH))
    out = workdir / f"run-{time.monotonic_ns()}"
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    subprocess.run([sys.executable, "-m", "bench", "run", f"suite={suite}", f"out={out}",
                    f"tracking.uri={json.dumps(uri)}"], check=True, capture_output=True)  # fmt: skip
    rows = pd.read_csv(out / "results.csv")
    return float(rows["train_seconds"].iloc[-1])


def bare_run(steps: int) -> float:
    code = f"from bench.overhead import bare_loop; print(bare_loop({steps}))"
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    return float(result.stdout.strip().splitlines()[-1])


def measure(steps: int = 200, repeats: int = 3) -> dict[str, float]:
    """Fastest harness and bare seconds over alternating repeats, and their ratio."""
    harness, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            bare.append(bare_run(steps))
            harness.append(harness_run(steps, Path(tmp)))
    h, b = min(harness), min(bare)
    return {"steps": steps, "batch": BATCH, "harness_s": h, "bare_s": b,
            "harness_img_per_s": steps * BATCH / h, "bare_img_per_s": steps * BATCH / b,
            "ratio": h / b}  # fmt: skip


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    print(json.dumps(measure(*args), indent=2))
