"""The report's section that puts the paper's own numbers (Table 1 for MVTec AD, Table 2 for KolektorSDD) beside
ours, with the difference, using only runs of each model as the paper defines it, and lists every setting where
those runs differ from the paper's protocol: a row is labelled "paper protocol" only when none does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import figures
from .analysis import Analysis, Comparison
from .paper import protocol_of
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
    parts = [
        f"{NAMES.get(m, m)} {signed(g['diff'].mean())} ({protocol_label(c, m, where=None)})"
        for m, g in auc.groupby("model", sort=False)
    ]
    where = f"mean over {auc['category'].nunique()} categories" if c.table.by_category else "whole dataset"
    listed = " (the differences are listed in its section)" if any(c.differences.values()) else ""
    return [
        f"- Against the paper's {c.table.title.split(':')[0]} (ours - paper, AUC, {where}): {', '.join(parts)}{listed}."
    ]


def paper_section(a: Analysis, figs: FigureWriter) -> list[str]:
    c = a.paper
    if c is None:
        return []
    lines = [f"## The paper's numbers beside ours ({c.table.title})", ""]
    if c.used.empty:
        why = "no successful run" if a.ok.empty else "no run used a model as the paper defines it"
        return [*lines, f"_Nothing to compare: {why} (preset switches and loss weights, every attention stage)._", ""]
    if c.lines.empty:
        return [*lines, "_Nothing to compare: no run matches a model and category of the table._", ""]
    lines += [rows_used(c), "", *protocol_section(c)]
    if c.table.by_category:
        return lines + per_category(c, figs)
    body = [
        [
            NAMES.get(x.model, x.model),
            METRIC_NAMES.get(x.metric, x.metric),
            f"{x.reported:.2f}",
            cell(x.mean, x.std, x.n),
            signed(x.diff),
            protocol_label(c, x.model),
        ]
        for x in c.lines.itertuples()
    ]
    return [*lines, *md_table(["model", "metric", "paper", "ours", "difference", "protocol"], body), ""]


def rows_used(c: Comparison) -> str:
    variants = ", ".join(f"`{v}`" for v in sorted(set(c.used["variant"])))
    left_out = f"; {c.left_out} runs of other settings (ablated variants) left out" if c.left_out else ""
    return (
        f"Rows used: {len(c.used)} successful runs of each model as the paper defines it (its switches and loss "
        f"weights, every attention stage; variants {variants}){left_out}. Ours: mean ± std over seeds; difference = "
        "ours - paper. The paper reports one run per cell with no spread."
    )


# How our loaders split a dataset where the paper does not say how it split it (docs/datasets.md).
SPLITS = {
    "kolektor": "ours keeps all surfaces of one commutator (`kosNN`) on one side of train, validation and test, so "
    "no part is both trained on and tested on; the paper does not say how it split KolektorSDD"
}


def protocol_section(c: Comparison) -> list[str]:
    """Every setting where the compared runs differ from the paper's protocol, per model, and the settings the paper
    leaves open (never counted)."""
    lines = ["### Protocol: ours against the paper's", ""]
    body = [
        [NAMES.get(model, model), f"`{d.setting}`", d.ours, d.paper, protocol_of(model, c.tables)[d.setting].source]
        for model, diffs in c.differences.items()
        for d in diffs
    ]
    if body:
        lines += [*md_table(["model", "setting", "ours", "paper", "the paper's value from"], body), ""]
    else:
        lines += [
            "Every run used follows the paper's protocol in every setting the paper (or its official code) fixes.",
            "",
        ]
    unstated = [f"- `{name}`: ours {ours} ({known})." for name, ours, known in c.unstated]
    if c.table.dataset in SPLITS:
        unstated.append(f"- the split: {SPLITS[c.table.dataset]}.")
    if unstated:
        lines += ["Not stated by the paper (never counted as differences):", "", *unstated, ""]
    return lines


def protocol_label(c: Comparison, model: str, where: str | None = "listed above") -> str:
    """A compared row's label: the paper's protocol only when none of its settings differs."""
    n = len(c.differences.get(str(model), []))
    count = f"{n} difference{'s' if n != 1 else ''}"
    if n == 0:
        return "paper protocol"
    return f"our protocol ({count}, {where})" if where else f"our protocol, {count} from the paper's"


def per_category(c: Comparison, figs: FigureWriter) -> list[str]:
    """Table 1: a table per model (paper, ours, difference per category) and the paper's Figure 8 with ours."""
    lines = []
    for model, part in c.lines.groupby("model", sort=False):
        body = [[x.category, f"{x.reported:.3f}", cell(x.mean, x.std, x.n), signed(x.diff)] for x in part.itertuples()]
        if len(part) > 1:
            reported, ours = part["reported"].mean(), part["mean"].mean()
            body.append(["*mean*", f"{reported:.3f}", num(ours), signed(ours - reported)])
        table = md_table(["category", "paper", "ours", "difference"], body)
        lines += [f"### {NAMES.get(model, model)}", "", f"Protocol: {protocol_label(c, model)}.", "", *table, ""]
    if c.lines["category"].nunique() < 2:
        return [*lines, "_Figure skipped: one category._", ""]
    named = c.lines.assign(model=c.lines["model"].map(lambda m: NAMES.get(m, m)))
    mean, std, paper = (named.pivot(index="category", columns="model", values=v) for v in ("mean", "std", "reported"))
    caption = "Ours (solid, ± std over seeds) and the paper's (dashed), per category: the form of the paper's Figure 8."
    draw = lambda p: figures.category_lines(mean, std, p, paper=paper)  # noqa: E731
    return lines + figs(figures.PAPER, draw, caption)
