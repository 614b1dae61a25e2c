"""The paper's own numbers (Tables 1 and 2, shipped as `paper_tables.yaml`), its training protocol, and their
comparison with a study's.

A study reproduces Table 1 when it runs on MVTec AD and Table 2 when it runs on KolektorSDD. Only runs of a model as
the paper defines it count (the preset's switches and loss weights from `ssagan_core.presets`, all attention stages),
so an ablation variant is never passed off as the paper's model; `differences` lists every setting of the paper's
protocol where those runs still differ (iterations, learning rate, widths, score, ...), so a short or narrow run is
never passed off as the paper's protocol either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import yaml

from ssagan_core.presets import PRESETS

from ..study.schema import format_value

TABLES_FILE = Path(__file__).with_name("paper_tables.yaml")
ALL = "all"  # the row label of a table reported over a whole dataset (Table 2)


@dataclass(frozen=True)
class PaperTable:
    name: str  # "table1"
    title: str
    dataset: str  # the `dataset.kind` that reproduces it
    metrics: tuple[str, ...]  # trials.parquet metric columns
    cells: dict[str, dict[str, dict[str, float]]]  # model.model -> category (or "all") -> metric -> reported value
    by_category: bool  # Table 1: a row per category; Table 2: one row per model over the whole dataset

    def value(self, model: str, metric: str, category: str = ALL) -> float:
        return self.cells.get(model, {}).get(category, {}).get(metric, math.nan)


@dataclass(frozen=True)
class Setting:
    """One setting of the paper's protocol: a trials.parquet column, the paper's value and where it comes from."""

    name: str  # the trials.parquet column (= study key)
    value: object  # None: not stated by the paper (never counted as a difference)
    source: str  # the paper's section, or the official code the paper builds on where it is silent
    models: tuple[str, ...] | None = None  # the models it applies to; None = all


class Difference(NamedTuple):
    """A setting where the compared runs differ from the paper's protocol: our value(s) and the paper's, as text."""

    setting: str
    ours: str
    paper: str


@dataclass(frozen=True)
class PaperTables:
    source: str
    protocol: dict[str, Setting]  # the settings the YAML states (switches and loss weights: `protocol_of`)
    tables: dict[str, PaperTable]

    def for_dataset(self, kind: str) -> PaperTable | None:
        return next((t for t in self.tables.values() if t.dataset == kind), None)


def load_paper_tables(path: Path = TABLES_FILE) -> PaperTables:
    """Read the shipped tables (model.model -> category -> metric -> value) and the paper's protocol."""
    raw = yaml.safe_load(Path(path).read_text())
    models = raw["models"]  # the paper's column names -> ours
    tables = {}
    for name, t in raw["tables"].items():
        metrics = tuple(t["metrics"])
        cells: dict[str, dict[str, dict[str, float]]] = {}
        for label, values in t["values"].items():
            if label in models:  # a row per model (Table 2): values are the metrics
                cells.setdefault(models[label], {})[ALL] = dict(zip(metrics, map(float, values), strict=True))
            else:  # a row per category (Table 1): values are the models, in the order of `models`
                for model, value in zip(models.values(), values, strict=True):
                    cells.setdefault(model, {})[label] = {metrics[0]: float(value)}
        by_category = any(label not in models for label in t["values"])
        tables[name] = PaperTable(name, t["title"], t["dataset"], metrics, cells, by_category)
    protocol = {
        name: Setting(name, s["value"], s["from"], tuple(s["models"]) if "models" in s else None)
        for name, s in raw["protocol"].items()
    }
    return PaperTables(raw["source"], protocol, tables)


def is_paper_model(rows: pd.DataFrame) -> pd.Series:
    """Which rows ran a model as the paper defines it: the preset's switches and loss weights, every attention stage.
    These are the rows a table compares; the rest of their protocol may still differ (`differences`)."""
    mask = pd.Series(False, index=rows.index)
    for model in rows["model"].dropna().unique():
        if str(model) not in PRESETS:
            continue
        is_model = rows["model"] == model
        for name, want in PRESETS[str(model)].settings.items():
            if name in rows:
                is_model &= rows[name].map(lambda v, w=want: v == w or (isinstance(w, float) and math.isclose(v, w)))
        if model == "ssagan" and "attention_stages" in rows:
            is_model &= rows["attention_stages"] == "all"
        mask |= is_model
    return mask


def compare(rows: pd.DataFrame, table: PaperTable) -> pd.DataFrame:
    """One line per (model, category, metric) the table reports and the study ran: reported, our mean, std, n, and
    ours - reported. `rows`: successful runs of the paper's models (`is_paper_model`). Our std is over every
    run of the cell (seeds)."""
    out = []
    for model, group in rows.groupby("model", sort=False):
        if model not in table.cells:
            continue
        cells = group.groupby("category") if table.by_category else [(ALL, group)]
        for category, runs in cells:
            # The paper does not say how its F1 threshold was chosen; the test-optimal F1 (f1_max) is the upper
            # bound of any rule, so it is shown beside ours (validation threshold) for comparison only.
            metrics = [m for metric in table.metrics for m in ((metric, "f1_max") if metric == "f1" else (metric,))]
            for metric in metrics:
                reported = table.value(str(model), "f1" if metric == "f1_max" else metric, str(category))
                if math.isnan(reported) or metric not in runs:
                    continue
                values = runs[metric].dropna()
                mean = float(values.mean()) if len(values) else math.nan
                out.append(
                    {
                        "model": model,
                        "category": category,
                        "metric": metric,
                        "reported": reported,
                        "mean": mean,
                        "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                        "n": len(values),
                        "diff": mean - reported,
                    }
                )
    return pd.DataFrame(out, columns=["model", "category", "metric", "reported", "mean", "std", "n", "diff"])


# --- the paper's protocol ---------------------------------------------------------------------------------------


def protocol_of(model: str, tables: PaperTables | None = None) -> dict[str, Setting]:
    """Every setting of the paper's protocol for one model: the preset's switches and loss weights (the paper's,
    sections 3 and 4.2, for ssagan; the official networks' for the baselines), then the YAML's settings."""
    tables = tables or _shipped()
    preset = PRESETS.get(model)
    out = {k: Setting(k, v, preset.source) for k, v in preset.settings.items()} if preset else {}
    out.update({k: s for k, s in tables.protocol.items() if s.models is None or model in s.models})
    return out


def differences(rows: pd.DataFrame, tables: PaperTables | None = None) -> list[Difference]:
    """Every setting the paper states where `rows` (one model's runs) differ from it, in protocol order; ours shows
    every distinct value. A setting the rows do not record counts as a difference: nothing shows it matches."""
    models = rows["model"].dropna().unique()
    if len(models) != 1:
        raise ValueError(f"rows: one model's runs expected, got models {sorted(map(str, models))}")
    out = []
    for name, setting in protocol_of(str(models[0]), tables).items():
        if setting.value is None:
            continue
        values = rows[name].dropna() if name in rows else pd.Series(dtype=object)
        if len(values) == len(rows) and all(_same(v, setting.value) for v in values):
            continue
        ours = ", ".join(_show(v) for v in _distinct(values)) or "not recorded"
        if name == "iterations" and len(values):
            ours += _epochs(rows)
        out.append(Difference(name, ours, _show(setting.value)))
    return out


def unstated(rows: pd.DataFrame, tables: PaperTables | None = None) -> list[tuple[str, str, str]]:
    """The settings the paper does not state, as (setting, our distinct values, what is known): never differences."""
    tables = tables or _shipped()
    out = []
    for name, setting in tables.protocol.items():
        if setting.value is None:
            values = rows[name].dropna() if name in rows else pd.Series(dtype=object)
            out.append((name, ", ".join(_show(v) for v in _distinct(values)) or "not recorded", setting.source))
    return out


@cache
def _shipped() -> PaperTables:
    return load_paper_tables()


def _same(ours: object, paper: object) -> bool:
    """Ours equals the paper's: switches and names exactly, numbers up to float rounding (Parquet's float64)."""
    ours = ours.item() if hasattr(ours, "item") else ours  # numpy scalars -> Python's
    if isinstance(paper, (bool, str)) or isinstance(ours, (bool, str)):
        return type(ours) is type(paper) and ours == paper
    try:
        return math.isclose(float(ours), float(paper), rel_tol=1e-9)
    except (TypeError, ValueError):  # a number against something else
        return False


def _distinct(values: pd.Series) -> list:
    seen: list = []
    for v in values:
        if not any(_same(v, s) for s in seen):
            seen.append(v)
    try:
        return sorted(seen)
    except TypeError:
        return seen


def _show(value: object) -> str:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        return f"{int(value):,}"
    return format_value(value)


def _epochs(rows: pd.DataFrame) -> str:
    """Our iterations as epochs (iterations x batch / training images; the batch is capped at the training set), so
    the paper's 10,000 can be read either way: it states neither epochs nor batch size."""
    if "n_train" not in rows or "batch_size" not in rows:
        return ""
    n = pd.to_numeric(rows["n_train"], errors="coerce")
    epochs = (rows["iterations"] * rows["batch_size"].clip(upper=n) / n).dropna()
    if epochs.empty:
        return ""
    low, high = epochs.min(), epochs.max()
    return f" (≈ {low:,.0f} epochs)" if round(low) == round(high) else f" (≈ {low:,.0f} to {high:,.0f} epochs)"
