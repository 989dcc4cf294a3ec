"""Image suites end to end on their smoke profiles: rows, grids, ranking, conditional accuracy."""

import pandas as pd
import pytest

from bench.config import load_suite
from bench.registry import VARIANTS, load_all

load_all()


def test_losses_mnist_compares_the_five_losses_on_equal_budgets():
    suite = load_suite("losses_mnist")
    assert {e.label for e in suite.entries} == {"gan", "dcgan", "lsgan", "wgan", "wgan_gp"}
    assert len(suite.spec.seeds) >= 3 and suite.spec.datasets == ["mnist5k"]
    # The four non-GAN losses run on one architecture, so only the loss (and optimiser) differs.
    assert {e.config.arch for e in suite.entries if e.label != "gan"} == {"dcgan"}


def test_every_variant_is_in_some_default_suite():
    names = set()
    for suite in [
        "losses_mnist",
        "cgan_mnist",
        "mode_collapse",
        "wgan_vs_gp_images",
        "translation_paired",
        "translation_unpaired",
        "translation_attention",
        "superres",
        "likelihood_vs_gan",
        "anomaly_mnist",
        "stylegan_ablation",
        "musegan_bach",  # not images: MuseGAN's piano rolls
    ]:
        names |= {e.variant for e in load_suite(suite).entries}
    assert names == set(VARIANTS.names())


@pytest.mark.slow
def test_cgan_smoke_run_records_label_accuracy_grids_and_a_ranking(
    bench, cache, tmp_path, monkeypatch
):
    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    rc, err = bench("run", "suite=cgan_mnist", "profile=smoke", "tracking.enabled=false",
                    f"out={tmp_path / 'run'}")  # fmt: skip
    assert rc == 0, err
    run = tmp_path / "run"
    rows = pd.read_csv(run / "results.csv")
    final = rows[rows["step"] == rows["step"].max()]
    assert final["label_accuracy/lenet-mnist5k"].between(0, 1).all()
    assert (final["backbone_sha256/lenet-mnist5k"].str.len() == 64).all()
    assert (final["n_real/lenet-mnist5k"] == 1000).all() and (
        final["n_fake/lenet-mnist5k"] == 300
    ).all()
    # A grid at every evaluation, by class for the conditional generator.
    for cell in run.glob("cells/*"):
        assert sorted(p.name for p in (cell / "grids").iterdir()) == [
            "step_0000000.png", "step_0000010.png", "step_0000020.png"]  # fmt: skip
    summary = (run / "summary.md").read_text()
    assert "## Ranking, with significance" in summary and "fid/lenet-mnist5k" in summary
    assert any(f"{a} {verb} {b}" in summary for a, b in [("cgan", "cgan_mlp"), ("cgan_mlp", "cgan")]
               for verb in ("vs", "is better than"))  # fmt: skip


def test_translation_attention_ranks_on_kid_and_label_preservation_and_states_costs(
    bench, cache, tmp_path, monkeypatch
):  # fmt: skip
    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    rc, err = bench("run", "suite=translation_attention", "profile=smoke", "seeds=0,1",
                    "entries=cyclegan,ugatit,nicegan", "tracking.enabled=false",
                    f"out={tmp_path / 'run'}")  # fmt: skip
    assert rc == 0, err
    final = pd.read_csv(tmp_path / "run" / "results.csv").groupby(["variant", "seed"]).tail(1)
    assert len(final) == 6 and (final["status"] == "ok").all()
    summary = (tmp_path / "run" / "summary.md").read_text()
    ranking = summary.split("## Ranking, with significance")[1].split("\n## ")[0]
    # KID first (×100 only in Inception's features), and label preservation tested pairwise too.
    first = [line for line in ranking.splitlines() if line.startswith("- **")][0]
    assert first.startswith("- **kid/lenet-") and "×100" not in first
    for column in ("label_preservation/lenet-textured_digits/A2B",
                   "label_preservation/lenet-mnist5k/B2A"):  # fmt: skip
        block = ranking.split(f"- **{column}**")[1].split("\n- **")[0]
        assert block.count("  - ") == 3, block  # 3 pairs of 3 variants
    cost = summary.split("### Cost against `cyclegan`")[1]
    for variant in ("cyclegan", "ugatit", "nicegan"):
        assert f"| `{variant}` | `mnist2textured` |" in cost
    assert "| `cyclegan` | `mnist2textured` |" in cost and "| 1.00 |" in cost


@pytest.mark.slow
def test_superres_smoke_run_scores_y_psnr_names_the_content_network_and_tests_the_claims(
    bench, cache, tmp_path, monkeypatch
):
    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    rc, err = bench("run", "suite=superres", "profile=smoke", "tracking.enabled=false",
                    f"out={tmp_path / 'run'}")  # fmt: skip
    assert rc == 0, err
    run = tmp_path / "run"
    rows = pd.read_csv(run / "results.csv")
    final = rows[rows["step"] == rows["step"].max()].set_index(["variant", "dataset"])
    assert (rows["status"] == "ok").all() and len(final) == 6
    assert final["psnr_y"].between(5, 60).all() and final["ssim_y"].between(-1, 1).all()
    assert final.loc[("srgan", "sr_patches"), "fid/lenet-photo_crops"] > 0
    # No AlexNet weights given: LPIPS is empty, and each row says why.
    assert final["lpips_alex"].isna().all()
    assert final["note"].str.contains("lpips_alex: needs AlexNet's ImageNet weights").all()
    # Bicubic is no model: its outputs are the interpolation the grid shows next to the output.
    assert final.loc[("bicubic", "mnist5k_x4"), "train_seconds"] < 1
    # SRGAN's content loss is logged under the name of the network it is measured in; its
    # adversarial losses only after the MSE pretraining (half of the 20 steps).
    srgan = rows[rows["variant"] == "srgan"].set_index(["dataset", "step"])
    assert srgan.loc[("mnist5k_x4", 20), "loss/content/lenet-mnist5k:conv2"] > 0
    assert srgan.loc[("sr_patches", 20), "loss/content/lenet-photo_crops:conv2"] > 0
    assert pd.isna(srgan.loc[("mnist5k_x4", 10), "loss/critic"])
    assert srgan.loc[("mnist5k_x4", 20), "loss/critic"] > 0
    # A grid per evaluation: 16 (LR | bicubic | output | HR) quadruples, two per row.
    from PIL import Image

    grids = sorted((run / "cells" / "srgan__sr_patches__s0" / "grids").glob("*.png"))
    assert [g.name for g in grids] == ["step_0000000.png", "step_0000010.png", "step_0000020.png"]
    with Image.open(grids[-1]) as grid:
        assert grid.size == (3 * (8 * 49 + 1),) * 2  # 1-pixel gaps, scaled up 3×
    summary = (run / "summary.md").read_text()
    assert "psnr_y/ssim_y on the Y channel with `scale` border pixels cropped" in summary
    assert summary.count("SRResNet (MSE) has a higher PSNR than SRGAN: cannot be tested") == 2
    assert "### Cost against `srresnet`" in summary
