"""The likelihood capability of the generation task: binarised mnist5k, the likelihood columns
(filled by models that have a likelihood, empty with the reason for GANs), their determinism, and
the likelihood_vs_gan suite end to end."""

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.config import load_suite
from bench.datasets.images import mnist5k, mnist5k_bin
from bench.results import TIMING_COLUMNS
from bench.runner import CellJob, run_cell

REPO = Path(__file__).resolve().parents[1]
LIKELIHOOD = ["nll_nats", "bits_per_dim", "neg_elbo_nats"]


def test_mnist5k_bin_binarises_each_digit_once_and_keeps_mnist5ks_split():
    binary, grey = mnist5k_bin(), mnist5k()
    for split in ("train", "held_out"):
        (bits, labels), (images, grey_labels) = binary.split(split), grey.split(split)
        assert torch.equal(labels, grey_labels)
        assert set(bits.unique().tolist()) == {0, 255}
        assert not bits[images == 0].any() and (bits[images == 255] == 255).all()
        # Each pixel is on with probability intensity / 255: the mean intensities agree.
        assert float(bits.float().mean()) == pytest.approx(float(images.float().mean()), rel=0.01)
    assert binary.spec.binary and not grey.spec.binary
    assert binary.fingerprint() == mnist5k_bin().fingerprint()  # one fixed draw, not a new one


def _cell(tmp_path: Path, name: str, variant: str, config: dict, dataset: str = "digits") -> list:
    """The rows of one tiny cell on 8×8 digits: 6 steps, evaluated at 0, 3 and 6."""
    suite = load_suite(str(REPO / "suites" / "likelihood_vs_gan.toml"), profile="smoke")
    eval_cfg = suite.spec.eval.model_dump() | {
        "every": 3, "num_samples": 64, "num_real": 128, "likelihood_samples": 60, "iwae_k": 5,
    }  # fmt: skip
    rows: list[dict] = []
    job = CellJob(
        cell_id=name, label=variant, variant=variant, config=config, dataset=dataset, seed=0,
        gen_steps=6, batch_size=16, eval=eval_cfg, metrics=[*LIKELIHOOD, "fid"], device="cpu",
        cell_dir=str(tmp_path / name), cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert run_cell(job, lambda kind, p: rows.extend(p) if kind == "rows" else 0) == "ok"
    return rows


def _numbers(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows])


def test_an_autoregressive_model_reports_its_exact_likelihood_the_same_every_run(tmp_path):
    rows = _cell(tmp_path, "a", "pixelcnn", {"channels": 8, "n_layers": 1})
    assert [r["step"] for r in rows] == [0, 3, 6]
    assert rows[-1]["nll_nats"] < 64 * math.log(256)  # trained: below uniform over 256 levels
    for row in rows:
        assert row["nll_nats"] > 0
        assert row["bits_per_dim"] == pytest.approx(row["nll_nats"] / (64 * math.log(2)))
        assert math.isnan(row["neg_elbo_nats"]) and "likelihood is exact" in row["note"]
        assert row["sample_s_per_image"] > 0 and math.isfinite(row["fid/lenet-digits"])
    again = _cell(tmp_path, "b", "pixelcnn", {"channels": 8, "n_layers": 1})
    pd.testing.assert_frame_equal(_numbers(again), _numbers(rows), check_exact=True)


def test_a_vae_reports_its_bound_and_elbo_and_a_gan_says_why_it_has_none(tmp_path):
    vae = _cell(tmp_path, "vae", "vae", {"ngf": 8, "ndf": 8})
    for row in vae:
        assert math.isfinite(row["nll_nats"]) and math.isfinite(row["neg_elbo_nats"])
        # The importance-weighted bound (k = 5) is at least as tight as the ELBO.
        assert row["nll_nats"] <= row["neg_elbo_nats"]
    gan = _cell(tmp_path, "gan", "dcgan", {"ngf": 8, "ndf": 8})
    for row in gan:
        assert all(math.isnan(row[m]) for m in LIKELIHOOD)
        assert "DCGAN defines no likelihood of an image" in row["note"]
        assert math.isfinite(row["fid/lenet-digits"]) and math.isfinite(row["critic_loss"])


def test_likelihood_metrics_on_data_without_held_out_images_are_refused(write_suite, bench):
    from tests.conftest import TINY_SUITE

    path = write_suite(TINY_SUITE.replace('"energy_distance"]', '"energy_distance", "nll_nats"]'))
    rc, err = bench("run", f"suite={path}", "tracking.enabled=false", "out=run")
    assert rc == 2 and "nll_nats score held-out images, but 8gaussians are not image" in err
    assert not Path("run").exists()


@pytest.mark.slow
def test_likelihood_vs_gan_smoke_run_ranks_bits_per_dim_and_fid_and_states_sampling_cost(
    bench, cache, tmp_path, monkeypatch
):
    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    rc, err = bench("run", "suite=likelihood_vs_gan", "profile=smoke", "tracking.enabled=false",
                    "entries=vae,pixelcnn,dcgan", f"out={tmp_path / 'run'}")  # fmt: skip
    assert rc == 0, err
    run = tmp_path / "run"
    rows = pd.read_csv(run / "results.csv")
    assert (rows["status"] == "ok").all()
    assert set(zip(rows["variant"], rows["dataset"], strict=True)) == {
        ("vae", "mnist5k"), ("vae", "mnist5k_bin"), ("pixelcnn", "mnist5k"),
        ("pixelcnn", "mnist5k_bin"), ("dcgan", "mnist5k"),
    }  # fmt: skip
    # The VAE's held-out NLL bound improves over training, on both kinds of data.
    for dataset in ("mnist5k", "mnist5k_bin"):
        vae = rows[(rows["variant"] == "vae") & (rows["dataset"] == dataset)].set_index("step")
        assert vae.loc[20, "nll_nats"] < vae.loc[0, "nll_nats"]
    # A binarised image costs at most 1 bit per pixel under a trained model; 8-bit up to 8.
    final = rows[rows["step"] == 20].set_index(["variant", "dataset"])
    assert final.loc[("pixelcnn", "mnist5k_bin"), "bits_per_dim"] < 1
    assert final.loc[("pixelcnn", "mnist5k"), "bits_per_dim"] < 8
    assert pd.isna(final.loc[("dcgan", "mnist5k"), "bits_per_dim"])
    # Drawing pixel by pixel is far slower than one pass of a generator, and the summary says so.
    assert (final.loc[("pixelcnn", "mnist5k"), "sample_s_per_image"]
            > 10 * final.loc[("dcgan", "mnist5k"), "sample_s_per_image"])  # fmt: skip
    summary = (run / "summary.md").read_text()
    assert "- **bits_per_dim** (lower is better):" in summary
    assert "- **fid/lenet-mnist5k** (lower is better):" in summary
    assert "sample_s_per_image" in summary and "images_seen" in summary
    assert "the importance-weighted bound with k = 10 for a VAE" in summary
