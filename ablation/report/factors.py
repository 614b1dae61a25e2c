"""What a study varied, as trials.parquet columns (`Design`): from the study saved beside the results or, for a
folder without one, read off the rows (the design column, the variant names, and the settings that vary)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ssagan_core.presets import SWITCHES

from ..study.schema import Study, column


@dataclass(frozen=True)
class Design:
    """What the study varied, as trials.parquet columns: grid factors and their levels in study order, LOCO's
    removed components, or a search's parameters."""

    kind: str  # grid | loco | search
    levels: dict[str, list] = field(default_factory=dict)  # grid: column -> levels
    bases: dict[str, Any] = field(default_factory=dict)  # grid: column -> the study's base value
    removed: dict[str, tuple[str, Any]] = field(default_factory=dict)  # loco: variant -> (column, off value)
    searched: list[str] = field(default_factory=list)  # search: columns
    order: list[str] = field(default_factory=list)  # variants, in the study's order
    inferred: bool = False  # True when the study was missing and the factors were read off the rows


# Settings a study without its study file may have varied, in the order they are looked for.
_SETTINGS = ("model", *SWITCHES, "w_adv", "w_ctx", "w_lat", "lr", "iterations", "batch_size", "score_lambda",
             "score_normalize", "score_reduce")  # fmt: skip


def describe_design(study: Study | None, rows: pd.DataFrame) -> Design:
    """The study's factors from the saved study, or (if missing) from the variant names and the rows."""
    kind = study.design if study else None
    if kind is None:
        designs = rows["design"][rows["design"] != ""]
        kind = designs.mode().iloc[0] if len(designs) else "grid"
    inferred = study is None
    if kind == "search":
        searched = [column(k) for k in study.search.space] if study else _variant_keys(rows)
        return Design("search", searched=[c for c in searched if c in rows], inferred=inferred)
    if kind == "loco":
        return _loco(study, rows, inferred)
    grid = {column(k): (k, v) for k, v in (study.grid if study else {}).items()}  # column -> (study key, values)
    columns = list(grid) if study else _variant_keys(rows) or _varying_settings(rows)
    levels, bases = {}, {}
    for name in (c for c in columns if c in rows):
        key, listed = grid.get(name, (None, None))
        levels[name] = _ordered_levels(name, list(rows[name].dropna().unique()), listed)
        if key:  # the study's base value of the factor, when its model:/train: section sets one
            section, field_name = key.split(".", 1)
            base = study.model if section == "model" else study.train
            if field_name in base:
                bases[name] = _match(base[field_name], levels[name])
    return Design("grid", levels=levels, bases=bases, order=_variant_order(rows, levels), inferred=inferred)


def _loco(study: Study | None, rows: pd.DataFrame, inferred: bool) -> Design:
    removed = {}
    for variant in rows["variant"].unique():
        name = variant.split("=", 1)[0]
        if variant != "base" and name in rows:
            removed[variant] = (name, rows.loc[rows["variant"] == variant, name].iloc[0])
    listed = [column(k) for k in (study.loco if study else {})]
    ranked = sorted(removed, key=lambda v: listed.index(removed[v][0]) if removed[v][0] in listed else len(listed))
    removed = {v: removed[v] for v in ranked}
    order = ["base", *removed] if (rows["variant"] == "base").any() else list(removed)
    return Design("loco", removed=removed, order=order, inferred=inferred)


def _variant_keys(rows: pd.DataFrame) -> list[str]:
    """Factor columns named in the variant names ("attention=true,conv=dsc"), for a study without its file."""
    keys: list[str] = []
    for variant in rows["variant"].unique():
        for part in str(variant).split(","):
            key = part.split("=", 1)[0]
            if "=" in part and key in rows and key not in keys:
                keys.append(key)
    return keys


def _varying_settings(rows: pd.DataFrame) -> list[str]:
    """Last resort: the setting columns whose values differ between trials."""
    return [c for c in _SETTINGS if c in rows and rows[c].nunique(dropna=True) > 1]


def _ordered_levels(name: str, seen: list, listed: tuple | None) -> list:
    """Levels in the study file's order (a listed level with no trial recorded is kept, so its comparisons show as
    not estimable rather than vanish); otherwise a switch's paper choice first, then sorted."""
    if listed:
        ordered = [_match(v, seen) for v in listed]
        return ordered + [v for v in seen if v not in ordered]
    if name in SWITCHES:
        return [v for v in SWITCHES[name] if v in seen] + [v for v in seen if v not in SWITCHES[name]]
    return sorted(seen, key=lambda v: (str(type(v)), v))


def _match(value: Any, seen: list) -> Any:
    """The row value that a study-file value stands for (lists are stored as "2,3,4" strings), else the value."""
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    for v in seen:
        if v == value or (isinstance(v, float) and isinstance(value, float) and math.isclose(v, value, rel_tol=1e-9)):
            return v
    return value


def _variant_order(rows: pd.DataFrame, levels: dict[str, list]) -> list[str]:
    """Variants in the grid's order (the cross product of the factors' levels, as the runner enumerates them)."""

    def rank(row: dict) -> tuple:
        return tuple(levels[c].index(row[c]) if row[c] in levels[c] else len(levels[c]) for c in levels)

    first = rows.drop_duplicates("variant").to_dict("records")
    return [r["variant"] for r in sorted(first, key=lambda r: (rank(r), r["variant"]))]
