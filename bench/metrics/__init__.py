"""Evaluation metrics, registered by name. Importing this package registers every metric."""

from collections.abc import Iterable

from bench.metrics import images, toy  # noqa: F401
from bench.metrics.base import Metric, NotApplicable
from bench.metrics.images import ImageMetric

__all__ = ["ImageMetric", "Metric", "NotApplicable", "column_direction", "metric_columns"]


def metric_columns(metrics: Iterable[str], columns: Iterable[str]) -> list[str]:
    """The result columns that suite metrics fill: `fid` → `fid/lenet-mnist5k`, `fid/inception`."""
    from bench.registry import METRICS

    columns = list(columns)
    out: list[str] = []
    for name in metrics:
        metric = METRICS.get(name) if name in METRICS else None
        if isinstance(metric, ImageMetric):
            prefixes = [p for p, _ in metric.columns]
            out += [c for p in prefixes for c in columns if c.split("/", 1)[0] == p]
        elif name in columns:
            out.append(name)
    return out


def column_direction(column: str) -> bool | None:
    """True when higher is better, False when lower is, None when the column has no direction."""
    from bench.metrics.images import column_higher_is_better
    from bench.registry import METRICS

    if column in METRICS:
        return METRICS.get(column).higher_is_better
    if column.split("/", 1)[0].endswith("_std"):
        return None
    return column_higher_is_better(column)
