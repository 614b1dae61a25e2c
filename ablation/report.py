"""`python -m ablation.report OUT_DIR` (or `.../trials.parquet`): render a study's `report.md` and its figures from the
Parquet files alone (no Ray, no training). `ablation.run` calls `render_report` at the end of every study.

The report answers, per component: does it help, by how much, how sure are we, and what does it cost. Effects are
paired differences (same seed, category and other factors) with bootstrap intervals and signed-rank tests
(`ablation.stats`); search studies get their best trials, history and Optuna importances (`ablation.report_search`);
a study on MVTec AD or KolektorSDD is put beside the paper's tables (`ablation.paper`). Exit status of the CLI:
0 written, 2 bad input (one line, no traceback).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import figures
from .report_data import METRICS, STUDY_FILE, Design, ReportError, Results, column_of, describe_design, load_results
from .report_paper import paper_section, paper_summary
from .report_search import search_section, search_summary
from .report_text import (
    cell,
    compute_sentence,
    constant,
    effect_method,
    effect_notes,
    effect_sentence,
    effect_table,
    first,
    md_table,
    mean_std,
    num,
    planned_trials,
    shared_settings,
    threshold_sentence,
    trial_name,
)
from .results import FAILED, HISTORY_FILE, OK, SCORES_FILE, STOPPED, TRIALS_FILE
from .stats import HELPS, HURTS, Effect, adjust, fmt, grid_effects, interactions, loco_effects

REPORT_FILE, FIGURES_DIR = "report.md", "figures"
MAX_FAILED_LISTED = 50
PANELLED = ("roc_best_worst.png", "val_auc_history.png", "search_history.png")  # one panel per category
FIGURE_NAMES = (
    "paper_table1.png",
    "effects.png",
    "categories_heatmap.png",
    "categories_lines.png",
    "roc_best_worst.png",
    "val_auc_history.png",
    "search_history.png",
    "importances.png",
)


def render_report(out: Path) -> Path:
    """Write `<out>/report.md` and its figures (in `<out>/figures/`) from the Parquet files; return report.md."""
    results = load_results(out)
    design = describe_design(results)
    page = Page(results, design, results.out / FIGURES_DIR)
    text = page.render()
    path = results.out / REPORT_FILE
    tmp = path.with_name(f".{REPORT_FILE}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # figures were written first, so every link in the new report resolves
    for name in set(FIGURE_NAMES) - page.written:  # an earlier render's figure that this report does not link
        (page.fig_dir / name).unlink(missing_ok=True)
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
        self._memo: dict[str, Any] = {}
        self.written: set[str] = set()  # figure files drawn by this render
        if design.kind == "grid":
            self.effects = grid_effects(self.rows, design.levels, design.bases)
            self.interactions = interactions(self.rows, design.levels, design.bases)
        elif design.kind == "loco":
            self.effects = loco_effects(self.rows, design.removed)
        adjusted = adjust(self.effects + self.interactions)
        self.effects, self.interactions = adjusted[: len(self.effects)], adjusted[len(self.effects) :]

    def render(self) -> str:
        lines = self.title() + self.summary() + self.header() + self.failures()
        if self.d.kind == "search":
            lines += search_section(self)
        else:
            lines += self.effect_section() + self.variant_section() + self.category_section()
        lines += paper_section(self) + self.roc_section() + self.history_section()
        return "\n".join(lines).rstrip() + "\n"

    # --- top ---

    def title(self) -> list[str]:
        name = (self.r.study or {}).get("name") or first(self.rows["study"]) or self.r.out.name
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
        for e in self.interactions:  # only the interactions with a verdict: the rest are in their table
            if e.verdict in (HELPS, HURTS):
                lines.append(f"- {effect_sentence(e)}")
        if self.d.kind == "search":
            lines += search_summary(self)
        elif not self.effects:
            lines.append("- The study varies nothing that can be compared (one variant).")
        lines += paper_summary(self)
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
        dataset = first(rows["dataset"]) or (study.get("dataset") or {}).get("kind", "?")
        image_size = constant(rows, "image_size")
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
        described = [f"{column_of(k)} {next(iter(s))} {next(iter(s.values()))}" for k, s in space.items()]
        search = (self.r.study or {}).get("search") or {}
        scheduler = search.get("scheduler", "none")
        stopping = ", ASHA early stopping" if scheduler == "asha" else ""
        sampler = search.get("sampler", "unknown")
        over = "; ".join(described) or ", ".join(d.searched)
        trials = search.get("trials", "?")
        return f"search ({sampler} sampler{stopping}) over {over}, {trials} trials per category, selected on val AUC"

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
        shown = failed.head(MAX_FAILED_LISTED)
        table = [[f"`{k}`", e or "(no message)"] for k, e in zip(shown["trial_key"], shown["error"], strict=True)]
        lines += [*md_table(["trial", "error"], table), ""]
        if len(failed) > len(shown):
            lines += [f"... and {len(failed) - len(shown)} more (all in {TRIALS_FILE}, column `error`).", ""]
        return lines

    # --- effects ---

    def effect_section(self) -> list[str]:
        lines = ["## Component effects", ""]
        if not self.effects:
            return [*lines, "_No effects: the study has one variant, so there is nothing to compare._", ""]
        lines += [effect_method(self.d.kind), "", *effect_table(self.effects), ""]
        lines += effect_notes(self.effects)
        if self.all_effects:
            lines += self.figure("effects.png", "component effects", lambda p: figures.forest_plot(self.all_effects, p))
        else:
            lines += ["_Forest plot skipped: no effect could be estimated (no matched pairs)._", ""]
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
        headers = [
            "variant",
            "runs ok / failed",
            "AUC",
            "F1",
            "accuracy",
            "precision",
            "recall",
            "AUPR",
            "val AUC",
            "params G / D (M)",
            "train s",
            "images/s",
        ]
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
                    f"{num(g, 3)} / {num(dsc, 3)}",
                    num(ok["train_seconds"].mean(), 1),
                    num(ok["images_per_second"].mean(), 1),
                ]
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
                text = cell(row[variant], std.loc[category, variant], n.loc[category, variant])
                cells.append(f"**{text}**" if math.isfinite(row[variant]) and row[variant] == best else text)
            table.append([category, *cells])
        if len(mean.index) > 1:
            overall = mean.mean(axis=0)
            table.append(["*mean over categories*", *(num(v) for v in overall)])
        lines += [*md_table(["category", *(f"`{v}`" for v in mean.columns)], table), ""]
        if len(self.categories) < 2:
            lines += ["_Per-category figures skipped: one category._", ""]
            return lines
        if mean.shape[1] > 1:
            lines += self.figure(
                "categories_heatmap.png", "per-category heatmap", lambda p: figures.category_heatmap(mean, p)
            )
        lines += self.figure(
            "categories_lines.png", "per-category AUC by variant", lambda p: figures.category_lines(mean, std, p)
        )
        return lines

    # --- curves ---

    def roc_section(self) -> list[str]:
        lines = ["## ROC curves", ""]
        scores = self.r.scores
        if scores.empty or not {"trial_key", "split", "label", "score"} <= set(scores.columns):
            return [*lines, f"_Skipped: no per-image scores ({SCORES_FILE} missing or without its columns)._", ""]
        picks, why = self.best_and_worst()
        if not picks:
            return [*lines, f"_Skipped: {why}._", ""]
        curves = roc_frame(scores, self.ok, picks)
        if curves.empty:
            return [*lines, "_Skipped: no test scores with both normal and defective images for these trials._", ""]
        draw = lambda p: figures.roc_curves(curves, p)  # noqa: E731
        return [*lines, *self.figure("roc_best_worst.png", "ROC curves of the best and worst", draw, why)]

    def best_and_worst(self) -> tuple[list[tuple[str, str, list[str]]], str]:
        """(label "best"/"worst", variant or trial name, its trial keys) of the extremes, and how they were chosen."""
        if self.d.kind == "search":
            picks = []
            for _, rows in self.ok[np.isfinite(self.ok["val_auc"])].groupby("category", sort=False):
                extremes = {"best": rows["val_auc"].idxmax(), "worst": rows["val_auc"].idxmin()}
                for label, index in extremes.items():
                    if label == "worst" and index == extremes["best"]:
                        continue
                    key = rows.loc[index, "trial_key"]
                    picks.append((label, trial_name(key), [key]))
            return picks, "Test ROC of each category's trials with the highest and the lowest val AUC." if picks else (
                "no finished trial with a val AUC"
            )
        means = self.ok.groupby("variant")["auc"].mean().dropna()
        if means.empty:
            return [], "no successful trial with a test AUC"
        best, worst = means.idxmax(), means.idxmin()
        picks = [("best", best, list(self.ok.loc[self.ok["variant"] == best, "trial_key"]))]
        if worst != best:
            picks.append(("worst", worst, list(self.ok.loc[self.ok["variant"] == worst, "trial_key"])))
        return picks, (
            "Test ROC of the variants with the highest and the lowest mean test AUC (descriptive, not a selection), "
            "one curve per seed; the legend gives the mean AUC in that category."
        )

    def history_section(self) -> list[str]:
        lines = ["## Validation AUC during training", ""]
        frame, why = val_auc_frame(self.r.history, self.ok, self.d.kind)
        if frame is None:
            return [*lines, f"_Skipped: {why}._", ""]
        highlight = None
        caption = "Mean ± std over seeds per variant; the last point is the final validation."
        if self.d.kind == "search":
            # Dozens of trials: grey lines, with each category's best trial (by final val AUC) drawn in colour.
            final = frame.sort_values("iteration").groupby(["category", "line"]).tail(1)
            best = final.loc[final.groupby("category")["mean"].idxmax()]
            highlight = set(zip(best["category"], best["line"], strict=True))
            caption = "One grey line per trial; each category's best trial (by final val AUC) in colour."
        draw = lambda p: figures.val_auc_history(frame, p, highlight)  # noqa: E731
        return [*lines, *self.figure("val_auc_history.png", "validation AUC over iterations", draw, caption)]

    # --- helpers ---

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` the first time `key` is asked for (a result both the summary and a section use)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def figure(self, name: str, alt: str, draw: Callable[[Path], Path], caption: str = "") -> list[str]:
        """Draw a figure into figures/ and return the Markdown that links it (relative, so the folder travels)."""
        if name in PANELLED and len(self.categories) > figures.MAX_PANELS:
            caption += f" Panels for the first {figures.MAX_PANELS} of {len(self.categories)} categories."
        draw(self.fig_dir / name)
        self.written.add(name)
        return [*([caption, ""] if caption else []), f"![{alt}]({FIGURES_DIR}/{name})", ""]


def roc_frame(scores: pd.DataFrame, ok: pd.DataFrame, picks: list[tuple[str, str, list[str]]]) -> pd.DataFrame:
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


def val_auc_frame(history: pd.DataFrame, ok: pd.DataFrame, kind: str) -> tuple[pd.DataFrame | None, str]:
    """category, line, iteration, mean, std of val AUC over training (the final value from the trial's row), or
    (None, why not)."""
    if history.empty or not {"trial_key", "iteration", "val_auc"} <= set(history.columns):
        return None, f"no training history ({HISTORY_FILE} missing or without val_auc)"
    points = history[np.isfinite(history["val_auc"].astype("float64"))][["trial_key", "iteration", "val_auc"]]
    if points.empty:
        return None, "no trial reported val AUC during training (set train.eval_every)"
    if "iterations" in ok:  # the final validation, recorded in the trial's row rather than its history
        final = ok[["trial_key", "iterations", "val_auc"]].rename(columns={"iterations": "iteration"})
        points = pd.concat([points, final[np.isfinite(final["val_auc"])]], ignore_index=True)
    points = points.merge(ok[["trial_key", "variant", "category", "seed"]], on="trial_key")
    if points.empty:
        return None, "no successful trial has a val AUC history"
    points["line"] = [trial_name(k) for k in points["trial_key"]] if kind == "search" else points["variant"]
    frame = points.groupby(["category", "line", "iteration"], sort=False)["val_auc"].agg(["mean", "std"])
    return frame.reset_index(), ""


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
