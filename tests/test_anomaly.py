"""The anomaly task: the one-class split never leaks test images into training, the metrics rank
scores through the harness, and a suite runs end to end into the per-digit summary."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.datasets.images import mnist5k, to_uint8
from bench.registry import DATASETS, load_all
from bench.tasks.anomaly import AnomalyEval
from bench.tasks.base import EvalContext

load_all()


# --- Data: the normal/anomalous split -------------------------------------------------------------


def _keys(images: torch.Tensor) -> set[bytes]:
    return {bytes(img.numpy().tobytes()) for img in images}


@pytest.mark.parametrize("protocol", ["one_class", "leave_one_out"])
def test_training_holds_only_normal_images_and_no_test_image(protocol):
    data = DATASETS.get(f"mnist5k_{protocol}_3")()
    train_images, train_labels = data.split("train")
    normal = {3} if protocol == "one_class" else set(range(10)) - {3}
    assert set(train_labels.tolist()) == normal
    # Every training image of a normal class is there (nothing dropped but the anomalies).
    source_images, source_labels = mnist5k().split("train")
    assert len(train_images) == int(torch.isin(source_labels, torch.tensor(sorted(normal))).sum())
    scored = data.scored_set(1000)
    assert not _keys(scored.images) & _keys(train_images)  # no test image was trained on
    assert torch.equal(scored.anomalous, ~torch.isin(scored.labels, torch.tensor(sorted(normal))))
    # What the cells draw comes from the training split only.
    drawn = to_uint8(data.sample(2000, torch.Generator().manual_seed(1)))
    assert _keys(drawn) <= _keys(train_images)


def test_the_scored_set_keeps_every_normal_image_and_is_fixed():
    one = DATASETS.get("mnist5k_one_class_0")()
    for n, normal, anomalous in [
        (400, 100, 300),
        (1000, 100, 900),
        (100, 50, 50),
        (5000, 100, 900),
    ]:
        s = one.scored_set(n)
        assert (int((~s.anomalous).sum()), int(s.anomalous.sum())) == (normal, anomalous)
    loo = DATASETS.get("mnist5k_leave_one_out_0")()
    s = loo.scored_set(400)  # only 100 anomalies exist: all of them, and 300 normal images
    assert (int((~s.anomalous).sum()), int(s.anomalous.sum())) == (300, 100)
    assert torch.equal(one.scored_set(400).images, one.scored_set(400).images)


# --- Metrics through the harness's evaluation ------------------------------------------------------


class Oracle:
    """A stand-in model whose score of an image is fixed in advance by the image's bytes."""

    capabilities = frozenset({"scores_anomalies"})
    dropout_at_test = False

    def __init__(self, score_of: dict[bytes, float]) -> None:
        self.score_of = score_of

    def anomaly_scores(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.tensor([self.score_of[k] for k in
                             (bytes(i.numpy().tobytes()) for i in to_uint8(x))])  # fmt: skip


def _evaluate(tmp_path: Path, scorer, metrics=("auroc", "average_precision"), batch_size=64):  # noqa: ANN001
    data = DATASETS.get("mnist5k_one_class_7")()
    scored = data.scored_set(300)
    truth = dict(zip(_keys_list(scored.images), scored.anomalous.tolist(), strict=True))
    variant = Oracle({k: scorer(a) for k, a in truth.items()})
    ctx = EvalContext(variant, data, torch.device("cpu"), torch.Generator().manual_seed(0),
                      {"num_samples": 300, "batch_size": batch_size, "batch_norm": "running"},
                      list(metrics), tmp_path, tmp_path / "cell", gen_steps=10)  # fmt: skip
    return AnomalyEval(ctx)(10)


def _keys_list(images: torch.Tensor) -> list[bytes]:
    return [bytes(img.numpy().tobytes()) for img in images]


def test_a_perfect_score_has_auroc_1_and_a_reversed_one_auroc_0(tmp_path):
    perfect = _evaluate(tmp_path, lambda anomalous: float(anomalous))
    assert perfect["auroc"] == 1.0 and perfect["average_precision"] == 1.0
    reversed_ = _evaluate(tmp_path, lambda anomalous: -float(anomalous), batch_size=7)
    assert reversed_["auroc"] == 0.0
    # A constant score cannot rank: chance, and AP falls to the fraction of anomalies (200 of 300).
    constant = _evaluate(tmp_path, lambda anomalous: 0.0)
    assert constant["auroc"] == 0.5 and constant["average_precision"] == pytest.approx(2 / 3)
    # The final evaluation keeps every score and a grid of the most and least anomalous images.
    saved = np.load(tmp_path / "cell" / "scores.npz")
    assert len(saved["scores"]) == 300 and saved["anomalous"].sum() == 200
    assert (tmp_path / "cell" / "grids" / "most_and_least_anomalous.png").is_file()
    assert perfect["score_s_per_image"] > 0


def test_a_score_that_is_not_finite_leaves_the_metrics_empty_and_says_why(tmp_path):
    row = _evaluate(tmp_path, lambda anomalous: float("nan") if anomalous else 0.0)
    assert np.isnan(row["auroc"]) and np.isnan(row["average_precision"])
    assert "auroc: 200 of 300 anomaly scores are not finite" in row["note"]


# --- Suites -----------------------------------------------------------------------------------------


def test_a_dataset_of_another_kind_is_refused_for_the_anomaly_task(bench, tmp_path):
    rc, err = bench("run", "suite=ci_anomaly", 'datasets=["mnist5k"]', f"out={tmp_path / 'run'}")
    assert rc == 2
    assert "'mnist5k' holds samples data, but task 'anomaly_detection' needs anomaly data" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_anomaly_mnist_smoke_run_gives_the_per_digit_table_and_the_published_ordering(
    bench, tmp_path
):
    digits = ["mnist5k_one_class_1", "mnist5k_one_class_5", "mnist5k_one_class_8"]
    rc, err = bench("run", "suite=anomaly_mnist", "profile=smoke", "tracking.enabled=false",
                    f"datasets={digits}", f"out={tmp_path / 'run'}")  # fmt: skip
    assert rc == 0, err
    run = tmp_path / "run"
    rows = pd.read_csv(run / "results.csv")
    assert (rows["status"] == "ok").all() and len(rows) == 9
    assert rows["auroc"].between(0, 1).all() and rows["average_precision"].between(0, 1).all()
    assert (rows["score_s_per_image"] > 0).all()
    summary = (run / "summary.md").read_text()
    assert "## Anomaly detection on mnist5k, protocol `one_class`" in summary
    assert (
        "| digit | `anogan` | `f_anogan` | `conv_autoencoder` | AnoGAN, Ruff et al. 2018 |"
        in summary
    )
    assert "| 8 |" in summary and "0.849 |" in summary  # the published column, as a fraction
    assert "Mean auroc over the 3 digits" in summary
    assert "Spearman's rank correlation" in summary and "(p = " in summary
    assert "Digits from hardest to easiest" in summary
    assert "score_s_per_image" in summary


def test_two_runs_of_an_anomaly_suite_give_identical_scores(bench, tmp_path):
    from bench.results import TIMING_COLUMNS

    frames = []
    for name in ("a", "b"):
        rc, err = bench("run", "suite=ci_anomaly", "profile=smoke", f"out={tmp_path / name}")
        assert rc == 0, err
        frames.append(pd.read_csv(tmp_path / name / "results.csv")
                      .drop(columns=TIMING_COLUMNS, errors="ignore"))  # fmt: skip
    assert frames[0]["auroc"].notna().all()
    pd.testing.assert_frame_equal(frames[0], frames[1])
    scores = [np.load(tmp_path / n / "cells" / "anogan__mnist5k_one_class_1__s0" / "scores.npz")
              for n in ("a", "b")]  # fmt: skip
    assert np.array_equal(scores[0]["scores"], scores[1]["scores"])
