"""Writing TOML: the few value types suite files use (tables, strings, numbers, booleans, lists)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps(tree: dict[str, Any]) -> str:
    """`tree` as TOML text: plain values first, then each sub-table as [a.b]; None is left out."""
    lines: list[str] = []
    _table(tree, [], lines)
    return "\n".join(lines).strip() + "\n"


def _table(tree: dict[str, Any], path: list[str], lines: list[str]) -> None:
    plain = {k: v for k, v in tree.items() if not isinstance(v, dict) and v is not None}
    if path and (plain or not any(isinstance(v, dict) for v in tree.values())):
        lines += ["", f"[{'.'.join(map(key, path))}]"]
    lines += [f"{key(k)} = {value(v)}" for k, v in plain.items()]
    for k, v in tree.items():
        if isinstance(v, dict):
            _table(v, [*path, k], lines)


def key(name: str) -> str:
    return name if BARE_KEY.match(name) else json.dumps(name)


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, int | float | str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")
