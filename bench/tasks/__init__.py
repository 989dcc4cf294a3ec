"""Tasks, registered by name. Importing this package registers every task."""

from bench.tasks import anomaly, generation, music, superres, translation, unpaired  # noqa: F401
from bench.tasks.base import EvalContext, Evaluation, Task

__all__ = ["EvalContext", "Evaluation", "Task"]
