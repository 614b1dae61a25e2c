"""The report's figures: small PNGs (matplotlib, Agg backend) written atomically into `figures/` beside `report.md`.

`FIGURES` names every figure a report can link (its file, alt text, and whether it has a panel per category); each
drawing function draws one of them from plain frames the analysis has already computed, so no statistic is computed
here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, safe in Ray workers and CI

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .sequential import HELPS, HURTS, NEGLIGIBLE
from .stats import Effect

DPI = 110
MIN_DPI = 50
MAX_BYTES = 190_000  # per PNG
COLOURS = {HELPS: "#1b7837", HURTS: "#b2182b", NEGLIGIBLE: "#2166ac"}
NEUTRAL = "#555555"
MAX_PANELS = 15  # MVTec AD has 15 categories


@dataclass(frozen=True)
class Figure:
    file: str  # in figures/
    alt: str  # the Markdown link's alt text
    panelled: bool = False  # a panel per category, at most MAX_PANELS


PAPER = Figure("paper_table1.png", "ours and the paper's AUC per category")
EFFECTS = Figure("effects.png", "component effects")
CATEGORY_HEATMAP = Figure("categories_heatmap.png", "per-category heatmap")
CATEGORY_LINES = Figure("categories_lines.png", "per-category AUC by variant")
ROC = Figure("roc_best_worst.png", "ROC curves of the best and worst", panelled=True)
VAL_AUC = Figure("val_auc_history.png", "validation AUC over iterations", panelled=True)
SEARCH_HISTORY = Figure("search_history.png", "search history", panelled=True)
IMPORTANCES = Figure("importances.png", "parameter importances")
FIGURES = (PAPER, EFFECTS, CATEGORY_HEATMAP, CATEGORY_LINES, ROC, VAL_AUC, SEARCH_HISTORY, IMPORTANCES)


def save(fig: plt.Figure, path: Path) -> Path:
    """Write a PNG atomically (a reader never sees half a file) and free the figure. A figure over MAX_BYTES (many
    panels or curves) is re-rendered at a lower resolution, so the folder stays small enough to commit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        dpi = DPI
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        while tmp.stat().st_size > MAX_BYTES and dpi > MIN_DPI:
            dpi = max(MIN_DPI, int(dpi * 0.95 * math.sqrt(MAX_BYTES / tmp.stat().st_size)))
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def forest_plot(effects: list[Effect], path: Path, min_effect: float | None = None) -> Path:
    """Each effect's mean paired difference with its corrected interval and verdict (green helps, red hurts, blue
    negligible, grey undecided); the band is +-min_effect."""
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(effects) + 1.3))
    if min_effect:
        ax.axvspan(-min_effect, min_effect, color=COLOURS[NEGLIGIBLE], alpha=0.08, lw=0)
    for y, e in enumerate(reversed(effects)):
        colour = COLOURS.get(e.judged, NEUTRAL)
        if math.isfinite(e.low) and math.isfinite(e.high):
            ax.plot([e.low, e.high], [y, y], color=colour, lw=2.2, solid_capstyle="butt")
        ax.plot([e.mean], [y], "D" if e.interaction else "o", color=colour, ms=6)
        jitter = np.linspace(-0.18, 0.18, len(e.diffs)) if len(e.diffs) > 1 else np.zeros(len(e.diffs))
        ax.scatter(e.diffs, y + jitter, s=7, color=colour, alpha=0.35, lw=0)
    ax.axvline(0, color="black", lw=0.8)
    # The numbers and verdict at the right edge, so the figure reads on its own.
    for y, e in enumerate(reversed(effects)):
        interval = f" [{e.low:+.3f}, {e.high:+.3f}]" if math.isfinite(e.low) else ""
        ax.annotate(
            f"{e.mean:+.3f}{interval}\n{e.judged}",
            (1.01, y),
            xycoords=("axes fraction", "data"),
            va="center",
            fontsize=7,
            color=COLOURS.get(e.judged, NEUTRAL),
        )
    ax.set_yticks(range(len(effects)))
    ax.set_yticklabels([f"{e.name}\n({e.change})" if len(e.change) < 30 else e.name for e in reversed(effects)])
    band = f", band = ±{min_effect:g}" if min_effect else ""
    ax.set_xlabel(f"paired difference (after - before); dots = pairs, bar = corrected interval{band}")
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def category_heatmap(mean: pd.DataFrame, path: Path) -> Path:
    """Mean AUC per variant (rows, so long names read horizontally) and category (columns), annotated; the best
    variant of each category outlined. `mean`: categories x variants, as in the report's table."""
    grid = mean.T  # (variants, categories)
    fig, ax = plt.subplots(figsize=(0.62 * grid.shape[1] + 4.0, 0.36 * grid.shape[0] + 1.6))
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for j in range(grid.shape[1]):
        column = grid.iloc[:, j].to_numpy(dtype=float)
        best = int(np.nanargmax(column)) if np.isfinite(column).any() else -1
        for i, value in enumerate(column):
            if math.isfinite(value):
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="white" if value < 0.6 else "black",
                    fontweight="bold" if i == best else "normal",
                )
        if best >= 0:
            ax.add_patch(plt.Rectangle((j - 0.5, best - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
    ax.set_xticks(range(grid.shape[1]))
    ax.set_xticklabels(grid.columns, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]))
    ax.set_yticklabels(grid.index, fontsize=7)
    fig.colorbar(image, ax=ax, label="test AUC (mean over seeds)", fraction=0.03)
    return save(fig, path)


def category_lines(mean: pd.DataFrame, std: pd.DataFrame, path: Path, paper: pd.DataFrame | None = None) -> Path:
    """AUC per category, one line per variant with +-1 std error bars (the form of the paper's Figure 8); the paper's
    reported values, where given, as dashed lines in the colour of the matching column of `mean`."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(mean.index) + 3), 4.2))
    x = np.arange(len(mean.index))
    colour = dict(zip(mean.columns, colours(len(mean.columns)), strict=True))
    for k, variant in enumerate(mean.columns):
        offset = (k - (len(mean.columns) - 1) / 2) * 0.04  # keep error bars of close variants apart
        ax.errorbar(
            x + offset,
            mean[variant],
            yerr=std[variant].fillna(0),
            marker="o",
            ms=4,
            lw=1.3,
            capsize=2,
            label=short(variant, 40) if paper is None else f"ours: {variant}",
            color=colour[variant],
        )
    if paper is not None:
        for column in paper.columns:
            ax.plot(
                x,
                paper[column].reindex(mean.index),
                ls="--",
                lw=1,
                marker="x",
                ms=5,
                color=colour.get(column),
                label=f"paper: {column}",
            )
    ax.set_xticks(x)
    ax.set_xticklabels(mean.index, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("test AUC (mean +- std over seeds)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save(fig, path)


def roc_curves(curves: pd.DataFrame, path: Path) -> Path:
    """ROC curves, one panel per category; `curves`: label ("best"/"worst"), name (variant or trial), category,
    seed, fpr (array), tpr (array), auc. One thin line per seed; the legend gives the mean AUC."""
    categories = list(dict.fromkeys(curves["category"]))[:MAX_PANELS]
    fig, axes = panels(len(categories), 2.6, 2.6)
    palette = {"best": "#1b7837", "worst": "#b2182b"}
    for ax, category in zip(axes, categories, strict=False):
        for (label, name), part in curves[curves["category"] == category].groupby(["label", "name"], sort=False):
            for i, (_, c) in enumerate(part.iterrows()):
                legend = f"{label}: {short(name, 28)} (AUC {part['auc'].mean():.2f})" if i == 0 else None
                ax.plot(c["fpr"], c["tpr"], color=palette.get(label, NEUTRAL), lw=1, alpha=0.75, label=legend)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
        ax.set_title(category, fontsize=9)
        ax.set_xlabel("false positive rate", fontsize=7)
        ax.set_ylabel("true positive rate", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="lower right")
    return save(fig, path)


def val_auc_history(frame: pd.DataFrame, path: Path, highlight: set[tuple[str, str]] | None = None) -> Path:
    """Validation AUC over training iterations, one panel per category; `frame`: category, line (a variant or
    trial), iteration, mean, std. With `highlight` ((category, line) of a search's best trials), every other line is
    thin and grey."""
    categories = list(dict.fromkeys(frame["category"]))[:MAX_PANELS]
    fig, axes = panels(len(categories), 3.4, 2.5, cols=3 if len(categories) <= 6 else 5)
    bands = frame["line"].nunique() <= 4  # +-std bands of many variants only hide each other
    colour = dict(zip(dict.fromkeys(frame["line"]), colours(frame["line"].nunique()), strict=True))
    for ax, category in zip(axes, categories, strict=False):
        part = frame[frame["category"] == category]
        for line, g in part.groupby("line", sort=False):
            g = g.sort_values("iteration")
            if highlight is not None and (category, line) not in highlight:
                ax.plot(g["iteration"], g["mean"], color="grey", lw=0.7, alpha=0.5)
                continue
            label = f"best: {line}" if highlight else short(str(line), 40)
            (drawn,) = ax.plot(g["iteration"], g["mean"], marker="o", ms=3, lw=1.4, label=label, color=colour[line])
            if bands:
                spread = g["std"].fillna(0).to_numpy()
                ax.fill_between(
                    g["iteration"], g["mean"] - spread, g["mean"] + spread, color=drawn.get_color(), alpha=0.15
                )
        ax.set_title(category, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("val AUC", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if highlight is not None:
            ax.legend(fontsize=7, loc="lower right")
    if highlight is None:
        handles, labels = axes[0].get_legend_handles_labels()
        if len(labels) <= 20:
            fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, path)


def search_history(frame: pd.DataFrame, path: Path) -> Path:
    """A search's val AUC per trial in sampling order with the best so far, one panel per category (each category
    is its own search); `frame`: category, index, val_auc, status."""
    categories = list(dict.fromkeys(frame["category"]))[:MAX_PANELS]
    fig, axes = panels(len(categories), 4.2, 3.0, cols=3)
    for ax, category in zip(axes, categories, strict=False):
        g = frame[frame["category"] == category].sort_values("index")
        ok, stopped, failed = (g[g["status"] == s] for s in ("ok", "stopped", "failed"))
        ax.plot(ok["index"], ok["val_auc"], "o", ms=5, color="#2166ac", label="finished")
        if len(stopped):
            ax.plot(
                stopped["index"],
                stopped["val_auc"],
                "o",
                ms=5,
                mfc="none",
                color="#2166ac",
                label="stopped early (last val AUC)",
            )
        if len(failed):
            ax.plot(failed["index"], np.zeros(len(failed)), "x", color="#b2182b", label="failed (drawn at 0)")
        best = ok.set_index("index")["val_auc"].cummax().reindex(g["index"]).ffill()  # flat over stopped/failed
        ax.step(g["index"], best, where="post", color="#e08214", lw=1.5, label="best so far")
        ax.set_title(category, fontsize=9)
        ax.set_xlabel("trial (order of sampling)", fontsize=8)
        ax.set_ylabel("val AUC (the search metric)", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)


def importance_bars(importances: pd.DataFrame, path: Path) -> Path:
    """Parameter importances (rows parameters, columns categories), as grouped horizontal bars."""
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(importances.index) * max(1, len(importances.columns) / 2) + 1.2))
    height = 0.8 / len(importances.columns)
    y = np.arange(len(importances.index))
    for k, category in enumerate(importances.columns):
        ax.barh(y + k * height, importances[category], height=height, label=category)
    ax.set_yticks(y + height * (len(importances.columns) - 1) / 2)
    ax.set_yticklabels(importances.index)
    ax.invert_yaxis()
    ax.set_xlabel("importance for val AUC (fANOVA, sums to 1)")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    if len(importances.columns) > 1:
        ax.legend(fontsize=7)
    return save(fig, path)


def panels(n: int, width: float, height: float, cols: int = 5) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure of `n` panels, at most `cols` a row; unused cells are hidden. Returns (figure, the n axes)."""
    cols = max(1, min(n, cols))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols + 0.4, height * rows + 0.5), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def colours(n: int) -> list:
    """n distinct line colours: matplotlib's default 10, or tab20's 20 for more lines."""
    palette = plt.get_cmap("tab10" if n <= 10 else "tab20").colors
    return [palette[i % len(palette)] for i in range(n)]


def short(text: str, width: int = 24) -> str:
    """A variant name wrapped at its commas so that long names fit under an axis."""
    parts, lines, line = str(text).split(","), [], ""
    for part in parts:
        candidate = f"{line},{part}" if line else part
        if line and len(candidate) > width:
            lines.append(line + ",")
            line = part
        else:
            line = candidate
    return "\n".join([*lines, line])
