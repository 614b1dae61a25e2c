"""The report's figures: small PNGs (matplotlib, Agg backend) written atomically beside `report.md`.

Each function draws one figure from plain frames the report has already computed, so no statistic is computed here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, safe in Ray workers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .stats import HELPS, HURTS, Effect  # noqa: E402

DPI = 110
COLOURS = {HELPS: "#1b7837", HURTS: "#b2182b"}
NEUTRAL = "#555555"
MAX_PANELS = 15  # MVTec AD has 15 categories


def save(fig: plt.Figure, path: Path) -> Path:
    """Write a PNG atomically (a reader never sees half a file) and free the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def forest_plot(effects: list[Effect], path: Path) -> Path:
    """Each effect's mean paired AUC difference with its 95% interval; green helps, red hurts, grey no evidence."""
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(effects) + 1.3))
    for y, e in enumerate(reversed(effects)):
        colour = COLOURS.get(e.verdict, NEUTRAL)
        if math.isfinite(e.low) and math.isfinite(e.high):
            ax.plot([e.low, e.high], [y, y], color=colour, lw=2.2, solid_capstyle="butt")
        ax.plot([e.mean], [y], "D" if e.interaction else "o", color=colour, ms=6)
        jitter = np.linspace(-0.18, 0.18, len(e.diffs)) if len(e.diffs) > 1 else np.zeros(len(e.diffs))
        ax.scatter(e.diffs, y + jitter, s=7, color=colour, alpha=0.35, lw=0)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(effects)))
    ax.set_yticklabels([f"{e.name}\n({e.change})" if len(e.change) < 30 else e.name for e in reversed(effects)])
    ax.set_xlabel("paired AUC difference (after - before); dots = pairs, bar = 95% bootstrap CI")
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def category_heatmap(mean: pd.DataFrame, path: Path) -> Path:
    """Mean AUC per category (rows) and variant (columns), annotated; best per row outlined."""
    fig, ax = plt.subplots(figsize=(min(1.1 * mean.shape[1] + 2.5, 16), 0.4 * mean.shape[0] + 1.8))
    image = ax.imshow(mean.to_numpy(dtype=float), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(mean.shape[0]):
        row = mean.iloc[i].to_numpy(dtype=float)
        best = int(np.nanargmax(row)) if np.isfinite(row).any() else -1
        for j, value in enumerate(row):
            text = "" if not math.isfinite(value) else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if value < 0.6 else "black",
                    fontweight="bold" if j == best else "normal")  # fmt: skip
        if best >= 0:
            ax.add_patch(plt.Rectangle((best - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
    ax.set_xticks(range(mean.shape[1]))
    ax.set_xticklabels([short(c) for c in mean.columns], rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(mean.shape[0]))
    ax.set_yticklabels(mean.index, fontsize=8)
    fig.colorbar(image, ax=ax, label="test AUC (mean over seeds)", fraction=0.04)
    return save(fig, path)


def category_lines(mean: pd.DataFrame, std: pd.DataFrame, path: Path, paper: pd.DataFrame | None = None) -> Path:
    """AUC per category, one line per variant with +-1 std error bars (the form of the paper's Figure 8); the paper's
    reported values, where given, as dashed lines."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(mean.index) + 3), 4.2))
    x = np.arange(len(mean.index))
    for k, variant in enumerate(mean.columns):
        offset = (k - (len(mean.columns) - 1) / 2) * 0.04  # keep error bars of close variants apart
        ax.errorbar(x + offset, mean[variant], yerr=std[variant].fillna(0), marker="o", ms=4, lw=1.3, capsize=2,
                    label=short(variant, 40))  # fmt: skip
    if paper is not None:
        for column in paper.columns:
            ax.plot(x, paper[column].reindex(mean.index), ls="--", lw=1, marker="x", ms=4, label=f"paper: {column}")
    ax.set_xticks(x)
    ax.set_xticklabels(mean.index, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("test AUC (mean +- std over seeds)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save(fig, path)


def roc_curves(curves: pd.DataFrame, path: Path) -> Path:
    """ROC curves, one panel per category; `curves`: label, category, seed, fpr (array), tpr (array), auc."""
    categories = list(dict.fromkeys(curves["category"]))[:MAX_PANELS]
    cols = min(len(categories), 5)
    rows = math.ceil(len(categories) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 0.4, 2.6 * rows + 0.5), squeeze=False)
    labels = list(dict.fromkeys(curves["label"]))
    palette = dict(zip(labels, ("#1b7837", "#b2182b", "#2166ac", "#e08214"), strict=False))
    for ax, category in zip(axes.flat, categories, strict=False):
        for label in labels:
            part = curves[(curves["category"] == category) & (curves["label"] == label)]
            for i, (_, c) in enumerate(part.iterrows()):
                name = f"{short(label, 28)} (AUC {part['auc'].mean():.2f})" if i == 0 else None
                ax.plot(c["fpr"], c["tpr"], color=palette.get(label, NEUTRAL), lw=1, alpha=0.75, label=name)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
        ax.set_title(category, fontsize=9)
        ax.set_xlabel("false positive rate", fontsize=7)
        ax.set_ylabel("true positive rate", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="lower right")
    for ax in axes.flat[len(categories) :]:
        ax.axis("off")
    fig.tight_layout()
    return save(fig, path)


def val_auc_history(frame: pd.DataFrame, path: Path) -> Path:
    """Validation AUC over training iterations, one panel per category; `frame`: category, line (a variant or
    trial), iteration, mean, std."""
    categories = list(dict.fromkeys(frame["category"]))[:MAX_PANELS]
    cols = min(len(categories), 3)
    rows = math.ceil(len(categories) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 1.8, 3.0 * rows + 0.4), squeeze=False)
    for ax, category in zip(axes.flat, categories, strict=False):
        part = frame[frame["category"] == category]
        for line, g in part.groupby("line", sort=False):
            g = g.sort_values("iteration")
            (drawn,) = ax.plot(g["iteration"], g["mean"], marker="o", ms=3, lw=1.2, label=short(str(line), 40))
            spread = g["std"].fillna(0).to_numpy()
            ax.fill_between(g["iteration"], g["mean"] - spread, g["mean"] + spread, color=drawn.get_color(), alpha=0.15)
        ax.set_title(category, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("val AUC", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(categories) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(labels) <= 20:
        fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return save(fig, path)


def search_history(frame: pd.DataFrame, path: Path) -> Path:
    """A search's val AUC per trial in order, with the running best; `frame`: category, index, val_auc, status."""
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for category, g in frame.groupby("category", sort=False):
        g = g.sort_values("index")
        ok = g[g["status"] == "ok"]
        (points,) = ax.plot(ok["index"], ok["val_auc"], "o", ms=5, label=f"{category}: finished")
        colour = points.get_color()
        stopped = g[g["status"] == "stopped"]
        if len(stopped):
            ax.plot(stopped["index"], stopped["val_auc"], "o", ms=5, mfc="none", color=colour,
                    label=f"{category}: stopped early")  # fmt: skip
        failed = g[g["status"] == "failed"]
        if len(failed):
            ax.plot(failed["index"], np.zeros(len(failed)), "x", color=colour, label=f"{category}: failed (at 0)")
        best = ok.set_index("index")["val_auc"].reindex(g["index"]).cummax()
        ax.step(g["index"], best, where="post", color=colour, lw=1.5, label=f"{category}: best so far")
    ax.set_xlabel("trial (order of sampling)")
    ax.set_ylabel("val AUC (the search metric)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
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
