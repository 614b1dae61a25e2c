"""`python -m ablation.report OUT_DIR` (or `.../trials.parquet`): render a study's `report.md` and its figures from the
Parquet files alone (no Ray, no training). `ablation.run` calls `render_report` at the end of every study.

The report answers, per component: does it help, by how much, how sure are we, and what does it cost. Effects are
paired differences (same seed, category and other factors), with bootstrap intervals and signed-rank tests from
scipy; search studies get their best trials, history and Optuna importances. Exit status of the CLI: 0 written,
2 bad input (one line, no traceback).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from . import figures
from .importance import EVALUATOR, distributions, inferred_distributions, param_importances
from .paper import ALL, at_paper_settings, compare, load_paper_tables
from .results import FAILED, HISTORY_FILE, OK, SCORES_FILE, STOPPED, TRIALS_FILE
from .stats import ALPHA, HELPS, HURTS, SWITCHES, Effect, fmt, grid_effects, interactions, loco_effects

REPORT_FILE, FIGURES_DIR, STUDY_FILE = "report.md", "figures", "study.yaml"
REQUIRED = ("trial_key", "variant", "seed", "category", "status", "auc")
METRICS = ("auc", "f1", "accuracy", "precision", "recall", "aupr", "val_auc")
# Settings worth stating in the header when every trial shares them.
SHOWN_SETTINGS = ("model", "image_size", "iterations", "batch_size", "lr", "w_adv", "w_ctx", "w_lat", "score_lambda",
                  "base_channels", "max_channels", "depth", "ndf", "nz", "eval_every")  # fmt: skip
FIGURE_NAMES = ("effects.png", "categories_heatmap.png", "categories_lines.png", "roc_best_worst.png",
                "val_auc_history.png", "search_history.png", "importances.png")  # fmt: skip
BEST_TRIALS = 10


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


# --- input ----------------------------------------------------------------------------------------------------


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
    for col in (*METRICS, "train_seconds", "score_seconds", "images_per_second", "f1_max"):
        trials[col] = pd.to_numeric(trials[col], errors="coerce") if col in trials else np.nan
    for col in ("params_generator", "params_discriminator"):
        trials[col] = pd.to_numeric(trials[col], errors="coerce") if col in trials else np.nan
    trials["params"] = trials["params_generator"] + trials["params_discriminator"]
    for col in ("error", "design", "dataset", "study"):
        trials[col] = trials[col].fillna("").astype(str) if col in trials else ""
    trials["variant"] = trials["variant"].astype(str)
    trials["category"] = trials["category"].astype(str)
    # A row that did not finish has no usable metrics even if a partial value was recorded.
    trials.loc[trials["status"] != OK, [m for m in METRICS if m != "val_auc"]] = np.nan
    return trials.reset_index(drop=True)


# --- design ---------------------------------------------------------------------------------------------------


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
        searched = [_column(k) for k in space] or _variant_keys(rows)
        return Design("search", searched=[c for c in searched if c in rows], inferred=inferred)
    if kind == "loco":
        removed = {}
        for variant in rows["variant"].unique():
            if variant == "base":
                continue
            column = variant.split("=", 1)[0]
            if column in rows:
                removed[variant] = (column, rows.loc[rows["variant"] == variant, column].iloc[0])
        order_keys = [_column(k) for k in (study.get("loco") or {})]
        ranked = sorted(
            removed, key=lambda v: order_keys.index(v.split("=")[0]) if v.split("=")[0] in order_keys else 99
        )
        removed = {v: removed[v] for v in ranked}
        order = ["base", *removed] if (rows["variant"] == "base").any() else list(removed)
        return Design("loco", removed=removed, order=order, inferred=inferred)
    grid = study.get("grid") or {}
    columns = [_column(k) for k in grid] if grid else _variant_keys(rows) or _varying_settings(rows)
    levels = {}
    for column in (c for c in columns if c in rows):
        seen = list(rows[column].dropna().unique())
        listed = next((v for k, v in grid.items() if _column(k) == column), None)
        levels[column] = _ordered_levels(column, seen, listed)
    bases = {}
    for column in levels:
        section = study.get("train", {}) if column in _train_columns(study) else study.get("model", {})
        key = "name" if column == "model" else column
        if isinstance(section, dict) and key in section:
            bases[column] = _match(section[key], levels[column])
    order = _variant_order(rows, levels)
    return Design("grid", levels=levels, bases=bases, order=order, inferred=inferred)


def _column(key: str) -> str:
    """A study factor key ("model.attention", "model.name") -> its trials.parquet column."""
    return "model" if key == "model.name" else key.split(".", 1)[-1]


def _train_columns(study: dict) -> set[str]:
    return set((study.get("train") or {}).keys())


def _variant_keys(rows: pd.DataFrame) -> list[str]:
    """Factor columns named in the variant names ("attention=true,conv=dsc"), for a study without study.yaml."""
    keys: list[str] = []
    for variant in rows["variant"].unique():
        for part in str(variant).split(","):
            key = part.split("=", 1)[0]
            if "=" in part and key in rows and key not in keys:
                keys.append(key)
    return keys


def _varying_settings(rows: pd.DataFrame) -> list[str]:
    """Last resort: the setting columns whose values differ between trials."""
    settings = ["model", *SWITCHES, "w_adv", "w_ctx", "w_lat", "lr", "iterations", "batch_size", "score_lambda"]
    return [c for c in settings if c in rows and rows[c].nunique(dropna=True) > 1]


def _ordered_levels(column: str, seen: list, listed: list | None) -> list:
    """Levels in the study file's order; otherwise a switch's paper choice first, then sorted."""
    if listed:
        ordered = [m for m in (_match(v, seen) for v in listed) if m is not None]
        return ordered + [v for v in seen if v not in ordered]
    if column in SWITCHES:
        return [v for v in SWITCHES[column] if v in seen] + [v for v in seen if v not in SWITCHES[column]]
    return sorted(seen, key=lambda v: (str(type(v)), v))


def _match(value: Any, seen: list) -> Any:
    """The row value that a study-file value stands for (lists are stored as "2,3,4" strings)."""
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return next((v for v in seen if v == value or fmt(v) == fmt(value)), None)


def _variant_order(rows: pd.DataFrame, levels: dict[str, list]) -> list[str]:
    """Variants in the grid's order (the cross product of the factors' levels, as the runner enumerates them)."""
    first = rows.drop_duplicates("variant")

    def rank(row) -> tuple:
        return tuple(levels[c].index(row[c]) if row[c] in levels[c] else 99 for c in levels)

    ranked = sorted(first.itertuples(index=False), key=lambda r: (rank(r._asdict()), r.variant))
    return [r.variant for r in ranked]


# --- the report -----------------------------------------------------------------------------------------------


def render_report(out: Path) -> Path:
    """Write `<out>/report.md` and its figures (in `<out>/figures/`) from the Parquet files; return report.md."""
    results = load_results(out)
    design = describe_design(results)
    fig_dir = results.out / FIGURES_DIR
    for name in FIGURE_NAMES:  # a figure the study no longer allows must not linger from an earlier render
        (fig_dir / name).unlink(missing_ok=True)
    page = Page(results, design, fig_dir)
    text = page.render()
    path = results.out / REPORT_FILE
    tmp = path.with_name(f".{REPORT_FILE}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # figures were written first, so every link in the new report resolves
    return path


class Page:
    """Builds the Markdown section by section, writing each figure before the line that links it."""

    def __init__(self, results: Results, design: Design, fig_dir: Path) -> None:
        self.r, self.d, self.fig_dir = results, design, fig_dir
        self.rows = results.trials
        self.ok = self.rows[self.rows["status"] == OK]
        self.seeds = sorted(self.rows["seed"].dropna().unique().tolist())
        self.categories = list(dict.fromkeys(self.rows["category"]))
        self.effects: list[Effect] = []
        self.interactions: list[Effect] = []
        if design.kind == "grid":
            self.effects = grid_effects(self.rows, design.levels, design.bases)
            self.interactions = interactions(self.rows, design.levels, design.bases)
        elif design.kind == "loco":
            self.effects = loco_effects(self.rows, design.removed)

    def render(self) -> str:
        lines = self.title() + self.summary() + self.header() + self.failures()
        if self.d.kind == "search":
            lines += self.search()
        else:
            lines += self.effect_section() + self.variant_section() + self.category_section()
        lines += self.paper_section() + self.roc_section() + self.history_section()
        return "\n".join(lines).rstrip() + "\n"

    # --- top ---

    def title(self) -> list[str]:
        name = (self.r.study or {}).get("name") or _first(self.rows["study"]) or self.r.out.name
        lines = [f"# Study report: {name}", ""]
        description = (self.r.study or {}).get("description")
        if description:
            lines += [f"_{description.strip()}_", ""]
        if self.d.inferred:
            lines += [f"_No {STUDY_FILE} beside the results: the factors were read off the trials._", ""]
        return lines

    def summary(self) -> list[str]:
        lines = ["## Summary", ""]
        if self.ok.empty:
            return [*lines, f"No trial succeeded ({len(self.rows)} recorded); see the failed trials below.", ""]
        for e in self.effects:
            lines.append(f"- {effect_sentence(e)}")
        if self.d.kind == "search":
            lines += self.search_summary()
        elif not self.effects:
            lines.append("- The study varies nothing that can be compared (one variant).")
        lines += ["", self.spread_sentence(), ""]
        return lines

    def spread_sentence(self) -> str:
        if len(self.seeds) < 2:
            return (
                "One seed: no spread. Every mean below is a single run, and GAN anomaly detectors swing by 0.1-0.3 AUC "
                "between seeds of the same configuration; re-run with 5 or more seeds before trusting a difference."
            )
        if self.d.kind == "search":
            return (
                "Search trials each ran once, with seeds assigned round-robin: a trial's val AUC includes seed noise, "
                "so re-run the best settings over several seeds (a grid study) before trusting the ranking."
            )
        sd = self.ok.groupby(["variant", "category"])["auc"].std(ddof=1).dropna()
        if sd.empty:
            return "Seed-to-seed spread: not measurable (no variant and category has two successful seeds)."
        return (
            f"Seed-to-seed spread of test AUC within a variant and category: mean std {sd.mean():.3f} "
            f"(range {sd.min():.3f}-{sd.max():.3f}) over {len(self.seeds)} seeds."
        )

    def header(self) -> list[str]:
        rows, study = self.rows, self.r.study or {}
        counts = rows["status"].value_counts()
        dataset = _first(rows["dataset"]) or (study.get("dataset") or {}).get("kind", "?")
        image_size = _constant(rows, "image_size")
        facts = [
            ("dataset", f"{dataset}{f' at {image_size} px' if image_size is not None else ''}"),
            ("categories", f"{', '.join(self.categories)} ({len(self.categories)})"),
            ("design", self.design_sentence()),
            ("trials", self.trials_sentence(counts)),
            ("seeds", f"{', '.join(map(str, self.seeds))} ({len(self.seeds)})"),
            ("decision threshold", threshold_sentence(rows)),
            ("compute", compute_sentence(rows)),
            ("shared settings", shared_settings(rows) or "none"),
            ("code version", ", ".join(sorted(set(rows.get("code_version", pd.Series(dtype=str)).dropna()))) or "?"),
        ]
        devices = sorted(set(rows.get("device", pd.Series(dtype=str)).dropna()) - {""})
        if devices:
            facts.append(("devices", ", ".join(devices)))
        return ["## Study", "", *md_table(["", ""], [[f"**{k}**", v] for k, v in facts]), ""]

    def design_sentence(self) -> str:
        d = self.d
        if d.kind == "grid":
            if not d.levels:
                return "grid with no varied factor"
            full = "full factorial " if len(d.levels) > 1 else ""
            factors = "; ".join(f"{c}: {', '.join(fmt(v) for v in vals)}" for c, vals in d.levels.items())
            return f"{full}grid, {len(d.order)} variants ({factors})"
        if d.kind == "loco":
            parts = ", ".join(f"{c}={fmt(v)}" for c, v in d.removed.values())
            return f"leave-one-component-out: base + each component off alone ({parts})"
        space = ((self.r.study or {}).get("search") or {}).get("space") or {}
        described = [f"{_column(k)} {next(iter(s))} {next(iter(s.values()))}" for k, s in space.items()]
        search = (self.r.study or {}).get("search") or {}
        return (
            f"search ({search.get('sampler', '?')} sampler, {search.get('scheduler', 'none')} scheduler) over "
            f"{'; '.join(described) or ', '.join(d.searched)}, selected on val AUC"
        )

    def trials_sentence(self, counts: pd.Series) -> str:
        planned = planned_trials(self.r.study, len(self.categories))
        recorded = len(self.rows)
        parts = [f"{recorded} recorded" + (f" of {planned} planned" if planned else "")]
        parts.append(f"{counts.get(OK, 0)} ok")
        parts.append(f"{counts.get(FAILED, 0)} failed")
        if counts.get(STOPPED, 0):
            parts.append(f"{counts[STOPPED]} stopped early by ASHA")
        if planned and recorded < planned:
            parts.append(f"**{planned - recorded} never ran** (interrupted study?)")
        return ", ".join(parts)

    def failures(self) -> list[str]:
        failed = self.rows[self.rows["status"] == FAILED]
        if failed.empty:
            return []
        lines = [f"## Failed trials ({len(failed)})", ""]
        table = [[f"`{k}`", e or "(no message)"] for k, e in zip(failed["trial_key"], failed["error"], strict=True)]
        return [*lines, *md_table(["trial", "error"], table), ""]

    # --- effects ---

    def effect_section(self) -> list[str]:
        lines = ["## Component effects", ""]
        if not self.effects:
            return [*lines, "_No effects: the study has one variant, so there is nothing to compare._", ""]
        lines += [effect_method(self.d.kind), "", *effect_table(self.effects), ""]
        lines += effect_notes(self.effects)
        lines += self.figure("effects.png", "component effects", lambda p: figures.forest_plot(self.all_effects, p))
        if self.interactions:
            lines += [
                "### Two-factor interactions",
                "",
                "Per matched cell, (both switched - first only) - (second only - neither): positive means the first "
                "factor's effect is larger when the second factor is switched too. Same interval and test as above.",
                "",
                *effect_table(self.interactions, cost=False),
                "",
                *effect_notes(self.interactions),
            ]
        elif self.d.kind == "grid" and len(self.d.levels) > 1:
            lines += ["_Interactions are computed between two-level factors only._", ""]
        return lines

    @property
    def all_effects(self) -> list[Effect]:
        return [e for e in self.effects + self.interactions if e.n > 0]

    # --- variants and categories ---

    def variant_section(self) -> list[str]:
        lines = [
            "## Variants",
            "",
            "Mean ± std over seeds of each metric (per seed, the mean over categories); thresholded metrics use the "
            "validation threshold above. Cost: parameters of the generator / discriminator, training seconds and "
            "training images per second per trial.",
            "",
        ]
        headers = ["variant", "runs ok / failed", "AUC", "F1", "accuracy", "precision", "recall", "AUPR", "val AUC",
                   "params G / D (M)", "train s", "images/s"]  # fmt: skip
        table, incomplete = [], False
        n_categories = len(self.categories)
        for variant in self.d.order:
            runs = self.rows[self.rows["variant"] == variant]
            ok = runs[runs["status"] == OK]
            per_seed = ok.groupby("seed")
            cells = []
            for metric in METRICS:
                cells.append(mean_std(per_seed[metric].mean().dropna()))
            short_seeds = (per_seed["category"].nunique() < n_categories).any()
            incomplete |= bool(short_seeds)
            failed = int((runs["status"] != OK).sum())
            g, dsc = ok["params_generator"].mean() / 1e6, ok["params_discriminator"].mean() / 1e6
            mark = "*" if short_seeds else ""
            table.append(
                [
                    f"`{variant}`{mark}",
                    f"{len(ok)} / {failed}",
                    *cells,
                    f"{_num(g, 3)} / {_num(dsc, 3)}",
                    _num(ok["train_seconds"].mean(), 1),
                    _num(ok["images_per_second"].mean(), 1),
                ]  # fmt: skip
            )
        lines += [*md_table(headers, table), ""]
        if incomplete:
            lines += ["\\* some seed of this variant lacks a category (failed or missing): its mean is over fewer.", ""]
        if len(self.seeds) < 2:
            lines += ["One seed: no spread (± std needs two seeds).", ""]
        return lines

    def category_means(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(mean, std, n) of test AUC per category (rows) and variant (columns, in study order)."""
        grouped = self.ok.groupby(["category", "variant"])["auc"]
        cols = [v for v in self.d.order if v in set(self.ok["variant"])]
        index = [c for c in self.categories if c in set(self.ok["category"])]
        mean, std, n = (
            grouped.agg(a).unstack("variant").reindex(index=index, columns=cols) for a in ("mean", "std", "count")
        )
        return mean, std, n.fillna(0).astype(int)

    def category_section(self) -> list[str]:
        lines = ["## Per category", ""]
        if self.ok.empty:
            return [*lines, "_No successful trials._", ""]
        mean, std, n = self.category_means()
        lines += [
            "Test AUC, mean ± std over seeds (the layout of the paper's Table 1); the best mean per row in bold.",
            "",
        ]
        table = []
        for category in mean.index:
            row = mean.loc[category]
            best = row.max()
            cells = []
            for variant in mean.columns:
                text = _cell(row[variant], std.loc[category, variant], n.loc[category, variant])
                cells.append(f"**{text}**" if math.isfinite(row[variant]) and row[variant] == best else text)
            table.append([category, *cells])
        if len(mean.index) > 1:
            overall = mean.mean(axis=0)
            table.append(["*mean over categories*", *(_num(v) for v in overall)])
        lines += [*md_table(["category", *(f"`{v}`" for v in mean.columns)], table), ""]
        if len(self.categories) < 2:
            lines += ["_Per-category figures skipped: one category._", ""]
            return lines
        if mean.shape[1] > 1:
            lines += self.figure("categories_heatmap.png", "per-category heatmap",
                                 lambda p: figures.category_heatmap(mean, p))  # fmt: skip
        lines += self.figure("categories_lines.png", "per-category AUC by variant",
                             lambda p: figures.category_lines(mean, std, p))  # fmt: skip
        return lines

    # --- paper ---

    def paper_section(self) -> list[str]:
        dataset = _first(self.rows["dataset"])
        tables = load_paper_tables()
        table = tables.for_dataset(dataset)
        if table is None:
            return []
        lines = [f"## The paper's numbers beside ours ({table.title})", ""]
        ok = self.ok
        if ok.empty or "model" not in ok:
            return [*lines, "_No successful trials to compare._", ""]
        at_paper = ok[at_paper_settings(ok)]
        used = sorted(set(at_paper["variant"]))
        if at_paper.empty:
            return [*lines, "_No run used a model at its paper settings (preset switches and loss weights)._", ""]
        comparison = compare(at_paper, table)
        if comparison.empty:
            return [*lines, "_No run matches a model and category of the table._", ""]
        iterations = sorted(set(at_paper["iterations"].dropna().astype(int))) if "iterations" in at_paper else []
        lines += [
            f"Rows used: {len(at_paper)} successful runs at each model's paper settings (variants "
            f"{', '.join(f'`{v}`' for v in used)}). Ours: mean ± std over seeds; difference = ours - paper. The paper "
            f"reports one run per cell with no spread and trains {tables.training.get('iterations', '?'):,} "
            f"iterations; these runs trained {', '.join(map(str, iterations)) or '?'}.",
            "",
        ]
        names = {"ssagan": "proposed (ssagan)", "skip_ganomaly": "Skip-GANomaly", "ganomaly": "GANomaly",
                 "anogan": "AnoGAN"}  # fmt: skip
        labels = {"auc": "AUC", "accuracy": "accuracy", "recall": "recall", "f1": "F1 (validation threshold)",
                  "f1_max": "F1 (test-optimal; comparison only)"}  # fmt: skip
        if table.by_category:
            for model, part in comparison.groupby("model", sort=False):
                body = [
                    [c.category, f"{c.reported:.3f}", _cell(c.mean, c.std, c.n), _signed(c.diff)]
                    for c in part.itertuples()
                ]
                if len(part) > 1:
                    body.append(["*mean*", f"{part['reported'].mean():.3f}", _num(part["mean"].mean()),
                                 _signed(part["mean"].mean() - part["reported"].mean())])  # fmt: skip
                lines += [
                    f"### {names.get(model, model)}",
                    "",
                    *md_table(["category", "paper", "ours", "difference"], body),
                    "",
                ]
        else:
            body = [
                [
                    names.get(c.model, c.model),
                    labels.get(c.metric, c.metric),
                    f"{c.reported:.2f}",
                    _cell(c.mean, c.std, c.n),
                    _signed(c.diff),
                ]  # fmt: skip
                for c in comparison.itertuples()
            ]
            lines += [*md_table(["model", "metric", "paper", "ours", "difference"], body), ""]
        return lines

    # --- search ---

    def search_summary(self) -> list[str]:
        lines = []
        for category, rows in self.ok.groupby("category", sort=False):
            rows = rows[np.isfinite(rows["val_auc"])]
            if rows.empty:
                lines.append(f"- {category}: no finished trial reported a val AUC.")
                continue
            best = rows.loc[rows["val_auc"].idxmax()]
            params = ", ".join(f"{c}={fmt(best[c])}" for c in self.d.searched)
            lines.append(
                f"- {category}: best trial `{_trial_name(best['trial_key'])}` ({params}): val AUC "
                f"{best['val_auc']:.3f}, test AUC {_num(best['auc'])} (selected on val AUC only)."
            )
        return lines

    def search(self) -> list[str]:
        lines = ["## Search", ""]
        rows = self.rows.assign(index=[_trial_index(k) for k in self.rows["trial_key"]])
        lines += self.best_trials(rows)
        lines += self.figure("search_history.png", "search history",
                             lambda p: figures.search_history(rows, p), "Val AUC of each trial in sampling order "
                             "and the best so far, per category.")  # fmt: skip
        lines += self.importance_section()
        return lines

    def best_trials(self, rows: pd.DataFrame) -> list[str]:
        lines = [
            f"### Best trials (by val AUC, at most {BEST_TRIALS} per category)",
            "",
            "Selected on val AUC only: the test AUC is shown beside it, never used to rank.",
            "",
        ]
        ok = rows[(rows["status"] == OK) & np.isfinite(rows["val_auc"])]
        if ok.empty:
            return [*lines, "_No finished trial reported a val AUC._", ""]
        headers = ["rank", "trial", "category", "seed", *self.d.searched, "val AUC", "test AUC", "F1", "train s"]
        body = []
        for category, g in ok.groupby("category", sort=False):
            for rank, (_, t) in enumerate(g.sort_values("val_auc", ascending=False).head(BEST_TRIALS).iterrows(), 1):
                body.append(
                    [
                        str(rank),
                        f"`{_trial_name(t['trial_key'])}`",
                        category,
                        str(t["seed"]),
                        *(fmt(t[c]) for c in self.d.searched),
                        f"{t['val_auc']:.3f}",
                        _num(t["auc"]),
                        _num(t["f1"]),
                        _num(t["train_seconds"], 1),
                    ]  # fmt: skip
                )
        return [*lines, *md_table(headers, body), ""]

    def importance_section(self) -> list[str]:
        lines = ["### Parameter importances", "", f"Evaluator: {EVALUATOR}, on the finished trials' val AUC.", ""]
        space = ((self.r.study or {}).get("search") or {}).get("space") or {}
        dists = distributions(space) if space else inferred_distributions(self.ok, self.d.searched)
        results, notes = {}, []
        for category, rows in self.rows.groupby("category", sort=False):
            values, note = param_importances(rows, dists)
            if values:
                results[category] = values
            else:
                notes.append(f"- {category}: {note}.")
        if not results:
            return [*lines, *notes, ""]
        table = pd.DataFrame(results).reindex(list(dists)).fillna(0.0)
        body = [[f"`{p}`", *(f"{table.loc[p, c]:.2f}" for c in table.columns)] for p in table.index]
        lines += [*md_table(["parameter", *table.columns], body), "", *notes, *([""] if notes else [])]
        lines += self.figure("importances.png", "parameter importances", lambda p: figures.importance_bars(table, p))
        return lines

    # --- curves ---

    def roc_section(self) -> list[str]:
        lines = ["## ROC curves", ""]
        scores = self.r.scores
        if scores.empty or "split" not in scores:
            return [*lines, f"_Skipped: no {SCORES_FILE}._", ""]
        picks, why = self.best_and_worst()
        if not picks:
            return [*lines, f"_Skipped: {why}._", ""]
        curves = roc_frame(scores, self.ok, picks)
        if curves.empty:
            return [*lines, "_Skipped: no test scores with both normal and defective images for these trials._", ""]
        return [
            *lines,
            *self.figure(
                "roc_best_worst.png", "ROC curves of the best and worst", lambda p: figures.roc_curves(curves, p), why
            ),
        ]

    def best_and_worst(self) -> tuple[dict[str, list[str]], str]:
        """label -> trial keys of the best and the worst variant (search: trial), and a sentence on how chosen."""
        if self.d.kind == "search":
            ok = self.ok[np.isfinite(self.ok["val_auc"])]
            if ok.empty:
                return {}, "no finished trial with a val AUC"
            best, worst = ok.loc[ok["val_auc"].idxmax()], ok.loc[ok["val_auc"].idxmin()]
            picks = {f"best: {_trial_name(best['trial_key'])}": [best["trial_key"]]}
            if worst["trial_key"] != best["trial_key"]:
                picks[f"worst: {_trial_name(worst['trial_key'])}"] = [worst["trial_key"]]
            return picks, "Test ROC of the trials with the highest and the lowest val AUC."
        means = self.ok.groupby("variant")["auc"].mean().dropna()
        if means.empty:
            return {}, "no successful trial with a test AUC"
        best, worst = means.idxmax(), means.idxmin()
        picks = {f"best: {best}": list(self.ok.loc[self.ok["variant"] == best, "trial_key"])}
        if worst != best:
            picks[f"worst: {worst}"] = list(self.ok.loc[self.ok["variant"] == worst, "trial_key"])
        return picks, (
            "Test ROC of the variants with the highest and the lowest mean test AUC (descriptive, not a selection), "
            "one curve per seed; the legend gives the mean AUC."
        )

    def history_section(self) -> list[str]:
        lines = ["## Validation AUC during training", ""]
        frame, why = val_auc_frame(self.r.history, self.ok, self.d.kind)
        if frame is None:
            return [*lines, f"_Skipped: {why}._", ""]
        caption = "Mean ± std over seeds per variant." if self.d.kind != "search" else "One line per trial."
        return [*lines, *self.figure("val_auc_history.png", "validation AUC over iterations",
                                     lambda p: figures.val_auc_history(frame, p), caption)]  # fmt: skip

    # --- helpers ---

    def figure(self, name: str, alt: str, draw, caption: str = "") -> list[str]:
        """Draw a figure into figures/ and return the Markdown that links it (relative, so the folder travels)."""
        draw(self.fig_dir / name)
        return [*([caption, ""] if caption else []), f"![{alt}]({FIGURES_DIR}/{name})", ""]


# --- sentences and tables -------------------------------------------------------------------------------------


def effect_sentence(e: Effect) -> str:
    """One plain-words line: "attention (off -> on): helps, +0.041 AUC [0.012, 0.070], p = 0.031 (12/12 pairs
    higher); 1.4x train time"."""
    if e.n == 0:
        return f"**{e.name}** ({e.change}): not estimable, no matched pairs ({e.dropped} dropped)"
    text = f"**{e.name}** ({e.change}): {e.verdict}, {_signed(e.mean)} AUC {_ci(e)}, {_p(e.p)} ({_wins(e)})"
    costs = cost_words(e.cost)
    return f"{text}; {costs}" if costs else text


def cost_words(cost: dict[str, float]) -> str:
    names = {"params": "params", "train_seconds": "train time", "images_per_second": "images/s"}
    parts = [f"{v:.2g}x {names[k]}" for k, v in cost.items() if math.isfinite(v)]
    return ", ".join(parts)


def effect_method(kind: str) -> str:
    pairing = "base - component off, matched on seed and category" if kind == "loco" else (
        "after - before, matched on every other factor, seed and category"
    )  # fmt: skip
    return (
        f"Paired difference in test AUC ({pairing}). Interval: 95% BCa bootstrap of the mean (scipy.stats.bootstrap, "
        f"9,999 resamples; percentile where BCa is undefined). p: two-sided Wilcoxon signed-rank test "
        f"(scipy.stats.wilcoxon). Verdict: *helps* / *hurts* when the interval excludes 0 and p < {ALPHA:g}, else "
        f"*no evidence either way*. Cost: mean after / mean before over the same pairs."
    )


def effect_table(effects: list[Effect], cost: bool = True) -> list[str]:
    headers = ["factor", "change", "effect on AUC [95% CI]", "p", "pairs higher", "verdict"]
    if cost:
        headers += ["params", "train time", "images/s"]
    body = []
    for e in effects:
        verdict = f"**{e.verdict}**" if e.verdict in (HELPS, HURTS) else e.verdict
        row = [f"`{e.name}`", e.change, f"{_signed(e.mean)} {_ci(e)}", _p(e.p), _wins(e), verdict]
        if cost:
            row += [_ratio(e.cost.get(k)) for k in ("params", "train_seconds", "images_per_second")]
        body.append(row)
    return md_table(headers, body)


def effect_notes(effects: list[Effect]) -> list[str]:
    lines = []
    for e in effects:
        parts = [e.note] if e.note else []
        if e.dropped:
            parts.append(
                f"{e.dropped} pair{'s' if e.dropped > 1 else ''} dropped (one side failed, stopped or missing)"
            )
        if parts:
            lines.append(f"- `{e.name}`: {'; '.join(parts)}.")
    return [*lines, ""] if lines else []


def threshold_sentence(rows: pd.DataFrame) -> str:
    """How accuracy/precision/recall/F1 were thresholded, in words, per rule the trials used."""
    if "threshold_rule" not in rows:
        return "not recorded"
    parts = []
    for (rule, q), g in rows.groupby(["threshold_rule", rows.get("threshold_quantile", pd.Series(0.95, rows.index))]):
        if rule == "val_quantile":
            text = (
                f"{_ordinal(q * 100)} percentile of the validation normal images' scores (a {(1 - q) * 100:.3g}% "
                f"false-positive budget on held-out normal images)"
            )
        else:
            text = "the F1-optimal threshold on the validation split (normal images and their synthetic defects)"
        used = g.get("threshold_rule_used", pd.Series(dtype=str))
        fallback = int(((used != rule) & (used != "") & used.notna()).sum())
        if fallback:
            text += f"; fell back to val_quantile in {fallback} trials (no defects in the validation split)"
        parts.append(text + (f" ({len(g)} trials)" if rows["threshold_rule"].nunique() > 1 else ""))
    return "; ".join(parts) + "; chosen without test labels"


def compute_sentence(rows: pd.DataFrame) -> str:
    seconds = rows["train_seconds"].fillna(0).sum() + rows["score_seconds"].fillna(0).sum()
    text = f"{_duration(seconds)} of training and scoring summed over trials"
    if "started_at" in rows and "finished_at" in rows:
        start = pd.to_datetime(rows["started_at"], utc=True, errors="coerce").min()
        end = pd.to_datetime(rows["finished_at"], utc=True, errors="coerce").max()
        if pd.notna(start) and pd.notna(end):
            text += (
                f"; wall time {_duration((end - start).total_seconds())} ({start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC)"
            )
    return text


def shared_settings(rows: pd.DataFrame) -> str:
    shown = [(c, _constant(rows, c)) for c in SHOWN_SETTINGS if c != "image_size"]
    return ", ".join(f"{c}={fmt(v)}" for c, v in shown if v is not None)


def planned_trials(study: dict | None, n_categories: int) -> int | None:
    """How many trials the study file asks for (None without it)."""
    if not study:
        return None
    seeds = len(study.get("seeds") or [0])
    categories = (study.get("dataset") or {}).get("categories") or ["all"]
    n_cat = n_categories if categories in (["all"], "all") else len(categories)
    if study.get("search"):
        return int(study["search"].get("trials", 20)) * n_cat
    if study.get("loco"):
        return (len(study["loco"]) + 1) * seeds * n_cat
    grid = study.get("grid") or {}
    return int(np.prod([len(v) for v in grid.values()] or [1])) * seeds * n_cat


def roc_frame(scores: pd.DataFrame, ok: pd.DataFrame, picks: dict[str, list[str]]) -> pd.DataFrame:
    """label, category, seed, fpr, tpr, auc of each picked trial's test scores."""
    from sklearn.metrics import roc_curve

    test = scores[scores["split"] == "test"]
    meta = ok.set_index("trial_key")
    out = []
    for label, keys in picks.items():
        for key, g in test[test["trial_key"].isin(keys)].groupby("trial_key"):
            if g["label"].nunique() < 2 or key not in meta.index:
                continue
            fpr, tpr, _ = roc_curve(g["label"], g["score"])
            row = meta.loc[key]
            out.append({"label": label, "category": row["category"], "seed": row["seed"], "fpr": fpr, "tpr": tpr,
                        "auc": row["auc"]})  # fmt: skip
    return pd.DataFrame(out)


def val_auc_frame(history: pd.DataFrame, ok: pd.DataFrame, kind: str) -> tuple[pd.DataFrame | None, str]:
    """category, line, iteration, mean, std of val AUC over training (the final value from the trial's row), or
    (None, why not)."""
    if history.empty or "val_auc" not in history:
        return None, f"no {HISTORY_FILE}"
    points = history[np.isfinite(history["val_auc"].astype("float64"))][["trial_key", "iteration", "val_auc"]]
    if points.empty:
        return None, "no trial reported val AUC during training (set train.eval_every)"
    final = ok[["trial_key", "iterations", "val_auc"]].rename(columns={"iterations": "iteration"})
    points = pd.concat([points, final[np.isfinite(final["val_auc"])]], ignore_index=True)
    points = points.merge(ok[["trial_key", "variant", "category", "seed"]], on="trial_key")
    if points.empty:
        return None, "no successful trial has a val AUC history"
    points["line"] = [_trial_name(k) for k in points["trial_key"]] if kind == "search" else points["variant"]
    frame = points.groupby(["category", "line", "iteration"], sort=False)["val_auc"].agg(["mean", "std"])
    return frame.reset_index(), ""


def md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table ("|" in cells escaped: trial keys contain it)."""

    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *(line(r) for r in rows)]


def mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _cell(mean: float, std: float, n: int) -> str:
    if not n or not math.isfinite(mean):
        return "—"
    return f"{mean:.3f}" if n < 2 or not math.isfinite(std) else f"{mean:.3f} ± {std:.3f}"


def _ci(e: Effect) -> str:
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return "[no interval: one pair]" if e.n == 1 else "[no interval]"
    return f"[{e.low:+.3f}, {e.high:+.3f}]"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "p: n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _wins(e: Effect) -> str:
    ties = e.n - e.wins - e.losses
    return f"{e.wins}/{e.n} pairs higher" + (f", {ties} tied" if ties else "")


def _signed(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.3f}"


def _ratio(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.2f}x"


def _num(x: float, digits: int = 3) -> str:
    return "—" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}f}"


def _ordinal(x: float) -> str:
    n = f"{x:.3g}"
    if not n.replace(".", "").isdigit() or "." in n:
        return f"{n}th"
    k = int(n)
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _constant(rows: pd.DataFrame, column: str) -> Any:
    """The column's value if every trial has the same one, else None."""
    if column not in rows:
        return None
    values = rows[column].dropna().unique()
    return (
        values[0].item()
        if len(values) == 1 and hasattr(values[0], "item")
        else (values[0] if len(values) == 1 else None)
    )


def _first(values: pd.Series) -> str:
    values = [v for v in values.dropna().unique() if v != ""]
    return str(values[0]) if values else ""


def _trial_name(key: str) -> str:
    """ "search#0003|seed=0|nut" -> "search#0003"."""
    return str(key).split("|", 1)[0]


def _trial_index(key: str) -> int:
    name = _trial_name(key)
    digits = name.rsplit("#", 1)[-1]
    return int(digits) if digits.isdigit() else -1


# --- command line ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ablation.report", description="Render a study's report.md and figures from its Parquet files."
    )
    parser.add_argument("results", help="the study's output folder, or its trials.parquet")
    args = parser.parse_args(argv)
    try:
        path = render_report(Path(args.results))
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
