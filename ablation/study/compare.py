"""What `--resume` may continue: the study as it ran (the output folder's `study.yaml`) against the study file now.

A resumed study must not mix trials trained under different settings. Changes that only add trials (more seeds,
more values of a grid factor, more categories, a larger adaptive-seeds budget, more trials of a search, which go on
from the search's Optuna history) or that change how trials are run or
judged but not what they train (`resources`, `analysis`, the description, the dataset cache) are allowed and stated;
any other change (a model, train or dataset setting, a factor added or removed, a value or seed removed, the design)
is refused, naming the keys.
"""

from __future__ import annotations

from typing import Any

from .schema import Study

ADDITIVE = ("seeds", "dataset.categories")  # lists that may grow
FREE = ("description", "dataset.cache_dir", "resources.", "analysis.")  # how trials run or are judged, not what
BUDGET = ("adaptive_seeds.max", "adaptive_seeds.max_trials", "adaptive_seeds.max_hours")


def resume_changes(before: Study, now: Study) -> tuple[list[str], list[str]]:
    """(what changed and may continue, as phrases; the keys whose change is refused)."""
    old, new = _flat(before.to_dict()), _flat(now.to_dict())
    allowed, refused = [], []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if a == b:
            continue
        if key == "description":
            continue
        if (key in ADDITIVE or key.startswith("grid.")) and _grows(a, b):
            allowed.append(f"{key}: added {', '.join(map(str, [v for v in b if v not in a]))}")
        elif key == "search.trials" and isinstance(a, int) and isinstance(b, int) and b > a:
            allowed.append(f"search.trials: {a} -> {b} (the search goes on from its Optuna history)")
        elif key.startswith(FREE) or (key in BUDGET and a is not _MISSING and b is not _MISSING):
            allowed.append(f"{key}: {_show(a)} -> {_show(b)}")
        else:
            refused.append(key)
    return allowed, refused


class _Missing:
    def __repr__(self) -> str:
        return "(not set)"


_MISSING = _Missing()


def _grows(a: Any, b: Any) -> bool:
    return isinstance(a, list) and isinstance(b, list) and all(v in b for v in a) and len(b) > len(a)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, _Missing) else str(value)


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested sections to dotted keys (`resources.retries`); a grid's factor keys keep their dots
    (`grid.model.attention`); lists and scalars are values."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name != "search.space":
            out.update(_flat(value, name + "."))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out
