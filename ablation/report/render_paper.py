"""The report's section that puts the paper's own numbers (Table 1 for MVTec AD, Table 2 for KolektorSDD) beside
ours, with the difference, using only runs at each model's paper settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import figures
from .analysis import Analysis, Comparison
from .text import cell, md_table, num, signed

if TYPE_CHECKING:
    from .render import FigureWriter

NAMES = {"ssagan": "proposed (ssagan)", "skip_ganomaly": "Skip-GANomaly", "ganomaly": "GANomaly", "anogan": "AnoGAN"}
METRIC_NAMES = {
    "auc": "AUC",
    "accuracy": "accuracy",
    "recall": "recall",
    "f1": "F1 (validation threshold)",
    "f1_max": "F1 (test-optimal; comparison only)",
}


def paper_summary(a: Analysis) -> list[str]:
    """One summary line: ours - paper, averaged over the cells compared, per model."""
    c = a.paper
    if c is None or c.lines.empty:
        return []
    auc = c.lines[c.lines["metric"] == "auc"]
    parts = [f"{NAMES.get(m, m)} {signed(g['diff'].mean())}" for m, g in auc.groupby("model", sort=False)]
    where = f"mean over {auc['category'].nunique()} categories" if c.table.by_category else "whole dataset"
    return [f"- Against the paper's {c.table.title.split(':')[0]} (ours - paper, AUC, {where}): {', '.join(parts)}."]


def paper_section(a: Analysis, figs: FigureWriter) -> list[str]:
    c = a.paper
    if c is None:
        return []
    lines = [f"## The paper's numbers beside ours ({c.table.title})", ""]
    if c.used.empty:
        why = "no successful run" if a.ok.empty else "no run used a model at its paper settings"
        return [*lines, f"_Nothing to compare: {why} (preset switches and loss weights, every attention stage)._", ""]
    if c.lines.empty:
        return [*lines, "_Nothing to compare: no run matches a model and category of the table._", ""]
    lines += [rows_used(c), ""]
    if c.table.by_category:
        return lines + per_category(c, figs)
    body = [
        [
            NAMES.get(x.model, x.model),
            METRIC_NAMES.get(x.metric, x.metric),
            f"{x.reported:.2f}",
            cell(x.mean, x.std, x.n),
            signed(x.diff),
        ]
        for x in c.lines.itertuples()
    ]
    return [*lines, *md_table(["model", "metric", "paper", "ours", "difference"], body), ""]


def rows_used(c: Comparison) -> str:
    iterations = sorted(set(c.used["iterations"].dropna().astype(int))) if "iterations" in c.used else []
    variants = ", ".join(f"`{v}`" for v in sorted(set(c.used["variant"])))
    left_out = f"; {c.left_out} runs at other settings (ablated variants) left out" if c.left_out else ""
    paper_iterations = c.tables.training.get("iterations")
    return (
        f"Rows used: {len(c.used)} successful runs at each model's paper settings (variants {variants}){left_out}. "
        f"Ours: mean ± std over seeds; difference = ours - paper. The paper reports one run per cell with no spread"
        + (f" and trains {paper_iterations:,} iterations" if paper_iterations else "")
        + f"; these runs trained {', '.join(map(str, iterations)) or '?'}."
    )


def per_category(c: Comparison, figs: FigureWriter) -> list[str]:
    """Table 1: a table per model (paper, ours, difference per category) and the paper's Figure 8 with ours."""
    lines = []
    for model, part in c.lines.groupby("model", sort=False):
        body = [[x.category, f"{x.reported:.3f}", cell(x.mean, x.std, x.n), signed(x.diff)] for x in part.itertuples()]
        if len(part) > 1:
            reported, ours = part["reported"].mean(), part["mean"].mean()
            body.append(["*mean*", f"{reported:.3f}", num(ours), signed(ours - reported)])
        table = md_table(["category", "paper", "ours", "difference"], body)
        lines += [f"### {NAMES.get(model, model)}", "", *table, ""]
    if c.lines["category"].nunique() < 2:
        return [*lines, "_Figure skipped: one category._", ""]
    named = c.lines.assign(model=c.lines["model"].map(lambda m: NAMES.get(m, m)))
    mean, std, paper = (named.pivot(index="category", columns="model", values=v) for v in ("mean", "std", "reported"))
    caption = "Ours (solid, ± std over seeds) and the paper's (dashed), per category: the form of the paper's Figure 8."
    draw = lambda p: figures.category_lines(mean, std, p, paper=paper)  # noqa: E731
    return lines + figs(figures.PAPER, draw, caption)
