"""Anomaly-detection metrics: how well a model's anomaly scores rank anomalies above normal images.

Filled by the anomaly task (bench/tasks/anomaly.py) from the scores a variant gives the held-out
test images (higher = more anomalous), with the anomalies as the positive class. The maths is
scikit-learn's: AUROC is `roc_auc_score` (0.5 = chance, 1 = every anomaly above every normal image,
0 = the reverse), average precision is `average_precision_score`, which depends on the fraction of
anomalies in the test set (the summary states it), AUROC does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.datasets.base import Dataset
from bench.metrics.base import Metric, NotApplicable
from bench.registry import METRICS

ANOMALY = ("anomaly_detection",)


def _from_the_scores(real: torch.Tensor, fake: torch.Tensor, dataset: Dataset) -> float:
    raise NotApplicable("computed from a model's anomaly scores of held-out images, not samples")


@dataclass(frozen=True)
class ScoreMetric(Metric):
    """A function of (whether each test image is an anomaly, the model's score of it) → float."""

    score: Callable[[np.ndarray, np.ndarray], float] | None = None

    def of_scores(self, anomalous: np.ndarray, scores: np.ndarray) -> float:
        """The metric, or NotApplicable when it is undefined (one class only, scores not finite)."""
        bad = int((~np.isfinite(scores)).sum())
        if bad:
            raise NotApplicable(f"{bad} of {len(scores)} anomaly scores are not finite")
        if anomalous.all() or not anomalous.any():
            raise NotApplicable("the test set needs both normal and anomalous images")
        assert self.score is not None
        return float(self.score(anomalous, scores))


SCORE_METRICS = [
    ScoreMetric("auroc", _from_the_scores, True, "area under the ROC curve of the anomaly "
                "scores, anomalies positive (scikit-learn roc_auc_score)", ANOMALY,
                roc_auc_score),
    ScoreMetric("average_precision", _from_the_scores, True, "average precision of the anomaly "
                "scores, anomalies positive (scikit-learn average_precision_score)", ANOMALY,
                average_precision_score),
]  # fmt: skip
for _metric in SCORE_METRICS:
    METRICS.add(_metric.name, _metric)
