"""The report's inputs: a study's output folder read back (`Results`), and what the study varied (`Design`), from
the saved study.yaml or, when it is missing, from the variant names and the rows themselves."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .results import HISTORY_FILE, OK, SCORES_FILE, TRIALS_FILE
from .stats import SWITCHES

STUDY_FILE = "study.yaml"
REQUIRED = ("trial_key", "variant", "seed", "category", "status", "auc")
METRICS = ("auc", "f1", "accuracy", "precision", "recall", "aupr", "val_auc")
MEASURED = (  # numeric columns besides the metrics
    "f1_max",
    "train_seconds",
    "score_seconds",
    "images_per_second",
    "params_generator",
    "params_discriminator",
)


class ReportError(Exception):
    """The input cannot be reported on; one line for the user."""


@dataclass
class Results:
    """A study's output folder, read back: the three ledgers and the resolved study file (None if absent)."""

    out: Path
    trials: pd.DataFrame
    scores: pd.DataFrame
    history: pd.DataFrame
    study: dict[str, Any] | None


@dataclass
class Design:
    """What the study varied, as trials.parquet columns: grid factors and their levels in study order, LOCO's
    removed components, or a search's parameters."""

    kind: str  # grid | loco | search
    levels: dict[str, list] = field(default_factory=dict)  # grid: column -> levels
    bases: dict[str, Any] = field(default_factory=dict)  # grid: column -> the study's base value
    removed: dict[str, tuple[str, Any]] = field(default_factory=dict)  # loco: variant -> (column, off value)
    searched: list[str] = field(default_factory=list)  # search: columns
    order: list[str] = field(default_factory=list)  # variants, in the study's order
    inferred: bool = False  # True when study.yaml was missing and the factors were read off the rows


def load_results(path: str | os.PathLike) -> Results:
    """Read an output folder (or its trials.parquet); `ReportError` with one line if it is not a study's results."""
    path = Path(path)
    out = path.parent if path.suffix == ".parquet" else path
    trials_path = path if path.suffix == ".parquet" else path / TRIALS_FILE
    if not trials_path.exists():
        where = "no such file or folder" if not path.exists() else f"no {TRIALS_FILE} in it"
        raise ReportError(f"{path}: {where}; give a study's output folder or its {TRIALS_FILE}")
    trials = _read_parquet(trials_path)
    missing = [c for c in REQUIRED if c not in trials]
    if missing:
        raise ReportError(f"{trials_path}: not a trials ledger (missing columns: {', '.join(missing)})")
    scores = _read_parquet(out / SCORES_FILE) if (out / SCORES_FILE).exists() else pd.DataFrame()
    history = _read_parquet(out / HISTORY_FILE) if (out / HISTORY_FILE).exists() else pd.DataFrame()
    study = None
    if (out / STUDY_FILE).exists():
        try:
            study = yaml.safe_load((out / STUDY_FILE).read_text())
        except (OSError, yaml.YAMLError):
            study = None  # the report still renders, with factors read off the rows
        study = study if isinstance(study, dict) else None
    return Results(out, _prepare(trials), scores, history, study)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a truncated or foreign file
        raise ReportError(f"{path}: cannot read as Parquet ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def _prepare(trials: pd.DataFrame) -> pd.DataFrame:
    """Fill the columns an older or hand-made ledger may lack, and derive total parameters."""
    trials = trials.copy()
    for col in (*METRICS, *MEASURED):
        trials[col] = pd.to_numeric(trials[col], errors="coerce") if col in trials else np.nan
    trials["params"] = trials["params_generator"] + trials["params_discriminator"]
    for col in ("error", "design", "dataset", "study"):
        trials[col] = trials[col].fillna("").astype(str) if col in trials else ""
    trials["variant"] = trials["variant"].astype(str)
    trials["category"] = trials["category"].astype(str)
    # Float settings can come back from a JSON round trip one ulp off (0.9500000000000001 beside 0.95); rows are
    # grouped and paired on these values, so they are brought to 12 significant digits.
    measured = {*METRICS, *MEASURED, "threshold"}
    for col in trials.columns:
        if col not in measured and not col.startswith("final_") and pd.api.types.is_float_dtype(trials[col]):
            trials[col] = trials[col].map(lambda v: float(f"{v:.12g}") if np.isfinite(v) else v)
    # A row that did not finish has no usable metrics even if a partial value was recorded.
    trials.loc[trials["status"] != OK, [m for m in METRICS if m != "val_auc"]] = np.nan
    return trials.reset_index(drop=True)


def describe_design(results: Results) -> Design:
    """The study's factors from study.yaml, or (if missing) from the variant names and the rows."""
    rows, study = results.trials, results.study or {}
    kind = next((k for k in ("grid", "loco", "search") if study.get(k)), None)
    inferred = kind is None
    if kind is None:
        designs = rows["design"][rows["design"] != ""]
        kind = designs.mode().iloc[0] if len(designs) else "grid"
    if kind == "search":
        space = (study.get("search") or {}).get("space") or {}
        searched = [column_of(k) for k in space] or _variant_keys(rows)
        return Design("search", searched=[c for c in searched if c in rows], inferred=inferred)
    if kind == "loco":
        removed = {}
        for variant in rows["variant"].unique():
            column = _named_column(variant.split("=", 1)[0])
            if variant != "base" and column in rows:
                removed[variant] = (column, rows.loc[rows["variant"] == variant, column].iloc[0])
        listed = [column_of(k) for k in (study.get("loco") or {})]
        ranked = sorted(removed, key=lambda v: listed.index(removed[v][0]) if removed[v][0] in listed else len(listed))
        removed = {v: removed[v] for v in ranked}
        order = ["base", *removed] if (rows["variant"] == "base").any() else list(removed)
        return Design("loco", removed=removed, order=order, inferred=inferred)
    grid = {column_of(k): (k, v) for k, v in (study.get("grid") or {}).items()}  # column -> (study key, values)
    columns = list(grid) or _variant_keys(rows) or _varying_settings(rows)
    levels, bases = {}, {}
    for column in (c for c in columns if c in rows):
        key, listed = grid.get(column, (None, None))
        levels[column] = _ordered_levels(column, list(rows[column].dropna().unique()), listed)
        if key:  # the study's base value of the factor, when its model:/train: section sets one
            section, name = key.split(".", 1)
            if isinstance(study.get(section), dict) and name in study[section]:
                bases[column] = _match(study[section][name], levels[column])
    order = _variant_order(rows, levels)
    return Design("grid", levels=levels, bases=bases, order=order, inferred=inferred)


def column_of(key: str) -> str:
    """A study factor key ("model.attention", "model.name") -> its trials.parquet column."""
    return "model" if key == "model.name" else key.split(".", 1)[-1]


def _variant_keys(rows: pd.DataFrame) -> list[str]:
    """Factor columns named in the variant names ("attention=true,conv=dsc"), for a study without study.yaml."""
    keys: list[str] = []
    for variant in rows["variant"].unique():
        for part in str(variant).split(","):
            key = _named_column(part.split("=", 1)[0])
            if "=" in part and key in rows and key not in keys:
                keys.append(key)
    return keys


def _named_column(name: str) -> str:
    """The column of a factor as a variant name writes it: "name=ganomaly" is model.name, the `model` column."""
    return "model" if name == "name" else name


def _varying_settings(rows: pd.DataFrame) -> list[str]:
    """Last resort: the setting columns whose values differ between trials."""
    settings = [
        "model",
        *SWITCHES,
        "w_adv",
        "w_ctx",
        "w_lat",
        "lr",
        "iterations",
        "batch_size",
        "score_lambda",
        "score_normalize",
    ]
    return [c for c in settings if c in rows and rows[c].nunique(dropna=True) > 1]


def _ordered_levels(column: str, seen: list, listed: list | None) -> list:
    """Levels in the study file's order (a listed level with no trial recorded is kept, so its comparisons show as
    not estimable rather than vanish); otherwise a switch's paper choice first, then sorted."""
    if listed:
        ordered = [_match(v, seen) for v in listed]
        return ordered + [v for v in seen if v not in ordered]
    if column in SWITCHES:
        return [v for v in SWITCHES[column] if v in seen] + [v for v in seen if v not in SWITCHES[column]]
    return sorted(seen, key=lambda v: (str(type(v)), v))


def _match(value: Any, seen: list) -> Any:
    """The row value that a study-file value stands for (lists are stored as "2,3,4" strings), else the value."""
    if isinstance(value, list):
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
