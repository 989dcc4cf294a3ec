"""Evaluation metrics, registered by name. Importing this package registers every metric."""

from collections.abc import Iterable

from bench.metrics import anomaly, images, likelihood, music, pairs, ppl, toy  # noqa: F401
from bench.metrics.base import Metric, NotApplicable
from bench.metrics.images import ImageMetric

__all__ = [
    "ImageMetric",
    "Metric",
    "NotApplicable",
    "column_direction",
    "find_column",
    "metric_columns",
    "produced_columns",
]


def produced_columns(metrics: Iterable[str], backbone_names: list[str]) -> list[str]:
    """The result columns `metrics` fill on a dataset measured in `backbone_names` (none for a
    dataset that is not an image dataset): image metrics once per backbone, in backbone order."""
    from bench.registry import METRICS

    out: list[str] = []
    for name in metrics:
        metric = METRICS.get(name)
        if isinstance(metric, ImageMetric):
            out += [f"{prefix}/{b}" for b in backbone_names for prefix, _ in metric.columns]
        else:
            out.append(name)
    return out


def find_column(name: str, columns: list[str]) -> str | None:
    """`name` if it is one of `columns`, else the first column it is the metric part of (`fid` →
    `fid/lenet-mnist5k` when the domain backbone comes first); None when neither."""
    if name in columns:
        return name
    return next((c for c in columns if c.split("/", 1)[0] == name), None)


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
        else:  # a metric filled once per direction: cycle_l1 → cycle_l1/A2B2A, cycle_l1/B2A2B
            out += [c for c in columns if c.split("/", 1)[0] == name]
    return out


def column_direction(column: str) -> bool | None:
    """True when higher is better, False when lower is, None when the column has no direction."""
    from bench.metrics.images import column_higher_is_better
    from bench.registry import METRICS

    if column in METRICS:
        return METRICS.get(column).higher_is_better
    head = column.split("/", 1)[0]
    if head in METRICS and not isinstance(METRICS.get(head), ImageMetric):
        return METRICS.get(head).higher_is_better  # a plain metric filled per direction
    if column.split("/", 1)[0].endswith("_std"):
        return None
    return column_higher_is_better(column)
