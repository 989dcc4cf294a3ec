"""Registries of variants, datasets and metrics, looked up by explicit short names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bench.errors import UsageError

T = TypeVar("T")


class RegistryError(UsageError):
    """A duplicate registration or an unknown name."""


class Registry(Generic[T]):
    """A name → object map that refuses duplicates and names the known keys on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        # Looks up a name that nobody registered (datasets: a folder of the user's images), and
        # says what else a name may be when that fails too.
        self.fallback: Callable[[str], T | None] = lambda name: None
        self.fallback_hint: Callable[[], str] = lambda: ""

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under `name`."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        """Register `obj` under `name`; a name already taken is refused."""
        if name in self._items:
            raise RegistryError(
                f"{self.kind} '{name}' is already registered ({self._items[name]!r}); "
                f"pick another name for {obj!r}"
            )
        self._items[name] = obj

    def get(self, name: str) -> T:
        """The object registered as `name`, or an error listing the known names."""
        if name in self._items:
            return self._items[name]
        found = self.fallback(name)
        if found is not None:
            return found
        known = ", ".join(sorted(self._items)) or "(none)"
        hint = self.fallback_hint()
        raise RegistryError(
            f"unknown {self.kind} '{name}'; known {self.kind}s: {known}"
            + (f" ({hint})" if hint else "")
        )

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or (isinstance(name, str) and self.fallback(name) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


VARIANTS: Registry = Registry("variant")
DATASETS: Registry = Registry("dataset")
METRICS: Registry = Registry("metric")
TASKS: Registry = Registry("task")


def load_all() -> None:
    """Import every module that registers something, so lookups never depend on import order."""
    import bench.datasets  # noqa: F401
    import bench.metrics  # noqa: F401
    import bench.tasks  # noqa: F401
    import variants  # noqa: F401
