"""Everything the report says, computed once from a study's output folder: `analyse(results) -> Analysis`.

A frozen value: the trials (with the columns an older or hand-made ledger lacks filled in), what the study varied,
its paired effects (`stats`), the per-variant and per-category tables, the curves to draw, the paper comparison and,
for a search, its best trials and parameter importances. `render` turns it into Markdown and figures; nothing is
computed twice and no section reaches into another's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..results.ledger import HISTORY_FILE, SCORES_FILE, Results
from ..results.rows import OK
from ..study.schema import Analysis as AnalysisSettings
from ..study.schema import Study, search_index, trial_name
from . import importance
from .factors import Design, describe_design
from .health import Health, assess
from .paper import (
    Difference,
    PaperTable,
    PaperTables,
    compare,
    differences,
    is_paper_model,
    load_paper_tables,
    unstated,
)
from .pixels import Pixels, pixel_results
from .stats import Effect, adjust, grid_effects, interactions, judge, loco_effects

METRICS = ("auc", "f1", "accuracy", "precision", "recall", "aupr", "val_auc")  # the variant table's, in its order
MEASURED = ("f1_max", "train_seconds", "score_seconds", "images_per_second", "params_generator", "params_discriminator")
BEST_TRIALS = 10  # search: the top trials listed per category


@dataclass(frozen=True)
class VariantSummary:
    """One row of the variant table: runs, and per metric the per-seed means (each the mean over categories)."""

    name: str
    ok: int
    failed: int  # failed or stopped
    per_seed: dict[str, pd.Series]  # metric -> one mean per seed
    short_seeds: bool  # some seed lacks a category (its mean is over fewer)
    params_generator: float  # mean over the successful runs
    params_discriminator: float
    train_seconds: float
    images_per_second: float


@dataclass(frozen=True)
class CategoryAuc:
    """Test AUC per category (rows) and variant (columns, in study order): mean, std and count over seeds."""

    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame


@dataclass(frozen=True)
class Curves:
    """A figure's frame, or why there is none; `note` says how the curves were chosen (the figure's caption)."""

    frame: pd.DataFrame | None
    note: str
    highlight: frozenset = frozenset()  # val AUC history of a search: (category, trial) drawn in colour


@dataclass(frozen=True)
class Comparison:
    """The study beside the paper's table for its dataset."""

    tables: PaperTables
    table: PaperTable
    used: pd.DataFrame  # the successful runs of the paper's models (`paper.is_paper_model`)
    left_out: int  # successful runs of other models (ablated variants)
    lines: pd.DataFrame  # `paper.compare`'s frame; empty when nothing matches the table
    differences: dict[str, list[Difference]] = field(default_factory=dict)  # model -> its settings unlike the paper's
    unstated: list[tuple[str, str, str]] = field(default_factory=list)  # settings the paper does not state


@dataclass(frozen=True)
class SearchResults:
    """A search study's best trials (by val AUC, never test AUC) and Optuna's parameter importances."""

    rows: pd.DataFrame  # every trial, with its sampling `index`
    best: dict[str, pd.Series | None]  # category -> its best finished trial (None: no trial reported a val AUC)
    top: pd.DataFrame  # at most BEST_TRIALS per category, ranked by val AUC
    importances: pd.DataFrame | None  # parameter x category, or None
    importance_notes: list[str]  # per category without importances, why


@dataclass(frozen=True)
class Analysis:
    out: Path
    study: Study | None  # the study saved beside the results (None: the factors were read off the rows)
    design: Design
    rows: pd.DataFrame  # every trial
    ok: pd.DataFrame  # the successful trials
    scores: pd.DataFrame
    history: pd.DataFrame
    seeds: list
    categories: list[str]
    planned: int | None  # trials the study asked for (None without its study)
    effects: list[Effect]
    interactions: list[Effect]
    spread: pd.Series  # seed-to-seed std of test AUC per (variant, category)
    variants: list[VariantSummary]
    category_auc: CategoryAuc
    roc: Curves
    val_auc: Curves
    health: Health  # part AUCs and flags per variant x category (`health.variant_flags` for a verdict's line)
    paper: Comparison | None
    search: SearchResults | None = None
    all_effects: list[Effect] = field(default_factory=list)  # effects and interactions with at least one pair
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)  # min_effect and alpha of the verdicts
    pixels: Pixels | None = None  # pixel AUROC / AUPRO per variant, their effects, the galleries (`pixels`)


def analyse(results: Results) -> Analysis:
    """Compute every number of the report from the folder's Parquet files and its study."""
    rows = prepare(results.trials)
    ok = rows[rows["status"] == OK]
    design = describe_design(results.study, rows)
    categories = list(dict.fromkeys(rows["category"]))
    settings = results.study.analysis if results.study else AnalysisSettings()
    effects, inter = study_effects(results.study, rows, design, settings)
    return Analysis(
        out=results.out,
        study=results.study,
        design=design,
        rows=rows,
        ok=ok,
        scores=results.scores,
        history=results.history,
        seeds=sorted(rows["seed"].dropna().unique().tolist()),
        categories=categories,
        planned=_planned(results.study, len(categories)),
        effects=effects,
        interactions=inter,
        spread=ok.groupby(["variant", "category"])["auc"].std(ddof=1).dropna(),
        variants=[_variant_summary(rows, v, len(categories)) for v in design.order],
        category_auc=_category_auc(ok, design.order, categories),
        roc=_roc(results.scores, ok, design.kind),
        val_auc=_val_auc(results.history, ok, design.kind),
        health=assess(ok, results.scores, results.history, design.order),
        paper=_comparison(rows, ok),
        search=_search(results.study, rows, ok, design.searched) if design.kind == "search" else None,
        all_effects=[e for e in effects + inter if e.n > 0],
        settings=settings,
        pixels=pixel_results(results.study, rows, ok, design, settings, study_effects),
    )


def study_effects(
    study: Study | None, rows: pd.DataFrame, design: Design, settings: AnalysisSettings
) -> tuple[list[Effect], list[Effect]]:
    """(main effects, interactions), judged together (one Bonferroni count) on `settings.metric`; what the report
    shows and what adaptive seeds decide on."""
    effects, inter = [], []
    if design.kind == "grid":
        effects = grid_effects(rows, design.levels, design.bases, settings.metric)
        inter = interactions(rows, design.levels, design.bases, settings.metric)
    elif design.kind == "loco":
        effects = loco_effects(rows, design.removed, settings.metric)
    judged = judge(adjust(effects + inter), settings, *seed_plan(study, rows))
    return judged[: len(effects)], judged[len(effects) :]


def seed_plan(study: Study | None, rows: pd.DataFrame) -> tuple:
    """(the study's adaptive seeds or None, the seeds in the order they are run): what `stats.judge` replays."""
    if study is not None and study.adaptive_seeds is not None:
        return study.adaptive_seeds, list(study.seeds)
    return None, sorted(rows["seed"].dropna().unique().tolist())


def prepare(trials: pd.DataFrame) -> pd.DataFrame:
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


def _planned(study: Study | None, n_categories: int) -> int | None:
    """How many trials the study asks for, over the categories recorded when it named `all` (None without it)."""
    if study is None or study.adaptive_seeds is not None:  # adaptive seeds: how many depends on the verdicts
        return None
    categories = study.dataset.get("categories") or ["all"]
    all_of_them = categories == "all" or list(categories) == ["all"]
    return study.planned_trials(n_categories if all_of_them else len(categories))


def _variant_summary(rows: pd.DataFrame, variant: str, n_categories: int) -> VariantSummary:
    runs = rows[rows["variant"] == variant]
    ok = runs[runs["status"] == OK]
    per_seed = ok.groupby("seed")
    return VariantSummary(
        name=variant,
        ok=len(ok),
        failed=int((runs["status"] != OK).sum()),
        per_seed={metric: per_seed[metric].mean().dropna() for metric in METRICS},
        short_seeds=bool((per_seed["category"].nunique() < n_categories).any()),
        params_generator=ok["params_generator"].mean(),
        params_discriminator=ok["params_discriminator"].mean(),
        train_seconds=ok["train_seconds"].mean(),
        images_per_second=ok["images_per_second"].mean(),
    )


def _category_auc(ok: pd.DataFrame, order: list[str], categories: list[str]) -> CategoryAuc:
    grouped = ok.groupby(["category", "variant"])["auc"]
    cols = [v for v in order if v in set(ok["variant"])]
    index = [c for c in categories if c in set(ok["category"])]
    mean, std, n = (
        grouped.agg(a).unstack("variant").reindex(index=index, columns=cols) for a in ("mean", "std", "count")
    )
    return CategoryAuc(mean, std, n.fillna(0).astype(int))


# --- curves ---------------------------------------------------------------------------------------------------


def _roc(scores: pd.DataFrame, ok: pd.DataFrame, kind: str) -> Curves:
    """Test ROC curves of the best and the worst (variants by mean test AUC; search trials by val AUC)."""
    if scores.empty or not {"trial_key", "split", "label", "score"} <= set(scores.columns):
        return Curves(None, f"no per-image scores ({SCORES_FILE} missing or without its columns)")
    picks, why = _best_and_worst(ok, kind)
    if not picks:
        return Curves(None, why)
    curves = _roc_frame(scores, ok, picks)
    if curves.empty:
        return Curves(None, "no test scores with both normal and defective images for these trials")
    return Curves(curves, why)


def _best_and_worst(ok: pd.DataFrame, kind: str) -> tuple[list[tuple[str, str, list[str]]], str]:
    """(label "best"/"worst", variant or trial name, its trial keys) of the extremes, and how they were chosen."""
    if kind == "search":
        picks = []
        for _, rows in ok[np.isfinite(ok["val_auc"])].groupby("category", sort=False):
            extremes = {"best": rows["val_auc"].idxmax(), "worst": rows["val_auc"].idxmin()}
            for label, index in extremes.items():
                if label == "worst" and index == extremes["best"]:
                    continue
                key = rows.loc[index, "trial_key"]
                picks.append((label, trial_name(key), [key]))
        if not picks:
            return [], "no finished trial with a val AUC"
        return picks, "Test ROC of each category's trials with the highest and the lowest val AUC."
    means = ok.groupby("variant")["auc"].mean().dropna()
    if means.empty:
        return [], "no successful trial with a test AUC"
    best, worst = means.idxmax(), means.idxmin()
    picks = [("best", best, list(ok.loc[ok["variant"] == best, "trial_key"]))]
    if worst != best:
        picks.append(("worst", worst, list(ok.loc[ok["variant"] == worst, "trial_key"])))
    return picks, (
        "Test ROC of the variants with the highest and the lowest mean test AUC (descriptive, not a selection), "
        "one curve per seed; the legend gives the mean AUC in that category."
    )


def _roc_frame(scores: pd.DataFrame, ok: pd.DataFrame, picks: list[tuple[str, str, list[str]]]) -> pd.DataFrame:
    """label, name, category, seed, fpr, tpr, auc of each picked trial's test scores (scikit-learn's roc_curve)."""
    from sklearn.metrics import roc_curve

    test = scores[scores["split"] == "test"]
    meta = ok.set_index("trial_key")
    out = []
    for label, name, keys in picks:
        for key, g in test[test["trial_key"].isin(keys)].groupby("trial_key"):
            if g["label"].nunique() < 2 or key not in meta.index:
                continue
            fpr, tpr, _ = roc_curve(g["label"], g["score"])
            trial = meta.loc[key]
            out.append(
                {
                    "label": label,
                    "name": name,
                    "category": trial["category"],
                    "seed": trial["seed"],
                    "fpr": fpr,
                    "tpr": tpr,
                    "auc": trial["auc"],
                }
            )
    return pd.DataFrame(out)


def _val_auc(history: pd.DataFrame, ok: pd.DataFrame, kind: str) -> Curves:
    """category, line, iteration, mean, std of val AUC over training (the final value from the trial's row); a
    search draws one line per trial and highlights each category's best (by final val AUC)."""
    if history.empty or not {"trial_key", "iteration", "val_auc"} <= set(history.columns):
        return Curves(None, f"no training history ({HISTORY_FILE} missing or without val_auc)")
    points = history[np.isfinite(history["val_auc"].astype("float64"))][["trial_key", "iteration", "val_auc"]]
    if points.empty:
        return Curves(None, "no trial reported val AUC during training (set train.eval_every)")
    if "iterations" in ok:  # the final validation, recorded in the trial's row rather than its history
        final = ok[["trial_key", "iterations", "val_auc"]].rename(columns={"iterations": "iteration"})
        points = pd.concat([points, final[np.isfinite(final["val_auc"])]], ignore_index=True)
    points = points.merge(ok[["trial_key", "variant", "category", "seed"]], on="trial_key")
    if points.empty:
        return Curves(None, "no successful trial has a val AUC history")
    points["line"] = [trial_name(k) for k in points["trial_key"]] if kind == "search" else points["variant"]
    frame = points.groupby(["category", "line", "iteration"], sort=False)["val_auc"].agg(["mean", "std"])
    frame = frame.reset_index()
    if kind != "search":
        return Curves(frame, "Mean ± std over seeds per variant; the last point is the final validation.")
    # Dozens of trials: grey lines, with each category's best trial (by final val AUC) drawn in colour.
    final = frame.sort_values("iteration").groupby(["category", "line"]).tail(1)
    best = final.loc[final.groupby("category")["mean"].idxmax()]
    highlight = frozenset(zip(best["category"], best["line"], strict=True))
    return Curves(frame, "One grey line per trial; each category's best trial (by final val AUC) in colour.", highlight)


# --- the paper and searches -----------------------------------------------------------------------------------


def _comparison(rows: pd.DataFrame, ok: pd.DataFrame) -> Comparison | None:
    """The comparison with the paper's table for the study's dataset, or None when no table applies."""
    tables = load_paper_tables()
    datasets = [v for v in rows["dataset"].dropna().unique() if v != ""]
    table = tables.for_dataset(str(datasets[0]) if datasets else "")
    if table is None:
        return None
    used = ok[is_paper_model(ok)] if len(ok) and "model" in ok else ok.iloc[:0]
    lines = compare(used, table) if len(used) else pd.DataFrame()
    diffs = {str(m): differences(g, tables) for m, g in used.groupby("model", sort=False)} if len(used) else {}
    return Comparison(tables, table, used, len(ok) - len(used), lines, diffs, unstated(used, tables))


def _search(study: Study | None, rows: pd.DataFrame, ok: pd.DataFrame, searched: list[str]) -> SearchResults:
    """Each category's search: its best trial and top trials by val AUC, and the parameters' importances."""
    indexed = rows.assign(index=[search_index(k) for k in rows["trial_key"]])
    best: dict[str, pd.Series | None] = {}
    for category, g in ok.groupby("category", sort=False):
        g = g[np.isfinite(g["val_auc"])]
        best[category] = None if g.empty else g.loc[g["val_auc"].idxmax()]
    finished = indexed[(indexed["status"] == OK) & np.isfinite(indexed["val_auc"])]
    by_category = finished.groupby("category", sort=False)
    ranked = [g.sort_values("val_auc", ascending=False).head(BEST_TRIALS) for _, g in by_category]
    top = pd.concat(ranked) if ranked else finished
    if study is not None:
        dists = importance.distributions(study.search.space)
    else:
        dists = importance.inferred_distributions(ok, searched)
    values, notes = {}, []
    for category, g in rows.groupby("category", sort=False):
        found, note = importance.param_importances(g, dists)
        if found:
            values[category] = found
        else:
            notes.append(f"- {category}: {note}.")
    table = pd.DataFrame(values).reindex(list(dists)).fillna(0.0) if values else None
    return SearchResults(indexed, best, top, table, notes)
