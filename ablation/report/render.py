"""The report as Markdown: each section a function of the `Analysis`, in page order, drawing its figures through a
`FigureWriter` (each figure written before the line that links it).

The report answers, per component: does it help, by how much, how sure are we, and what does it cost. A search gets
its best trials and importances (`render_search`); a study on MVTec AD or KolektorSDD is put beside the paper's
tables (`render_paper`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..results.ledger import STUDY_FILE, TRIALS_FILE
from ..results.rows import FAILED, OK, STOPPED
from ..study.schema import column, format_value
from . import figures
from .analysis import METRICS, Analysis
from .figures import Figure
from .render_effects import effect_section, summary_lines
from .render_health import health_section
from .render_paper import paper_section, paper_summary
from .render_pixels import pixel_section
from .render_search import search_section, search_summary
from .text import (
    cell,
    compute_sentence,
    constant,
    first,
    md_table,
    mean_std,
    num,
    shared_settings,
    threshold_sentence,
)

MAX_FAILED_LISTED = 50


class FigureWriter:
    """Draws the report's figures into one folder and returns the Markdown that links them (relative links, so the
    folder travels); remembers what it wrote, so a re-render can remove figures the new report no longer links."""

    def __init__(self, folder: Path, n_categories: int) -> None:
        self.folder, self.n_categories = folder, n_categories
        self.written: set[str] = set()

    def __call__(self, figure: Figure, draw: Callable[[Path], Path], caption: str = "") -> list[str]:
        if figure.panelled and self.n_categories > figures.MAX_PANELS:
            caption += f" Panels for the first {figures.MAX_PANELS} of {self.n_categories} categories."
        draw(self.folder / figure.file)
        self.written.add(figure.file)
        return [*([caption, ""] if caption else []), f"![{figure.alt}]({self.folder.name}/{figure.file})", ""]


def render(a: Analysis, figs: FigureWriter) -> str:
    """The whole report.md."""
    lines = title(a) + summary(a) + header(a) + failures(a)
    if a.design.kind == "search":
        lines += search_section(a, figs)
    else:
        lines += effect_section(a, figs) + variant_section(a) + health_section(a) + pixel_section(a)
        lines += category_section(a, figs)
    lines += paper_section(a, figs) + roc_section(a, figs) + history_section(a, figs)
    return "\n".join(lines).rstrip() + "\n"


# --- top ------------------------------------------------------------------------------------------------------


def title(a: Analysis) -> list[str]:
    name = (a.study.name if a.study else "") or first(a.rows["study"]) or a.out.name
    lines = [f"# Study report: {name}", ""]
    if a.study and a.study.description:
        lines += [f"_{a.study.description.strip()}_", ""]
    if a.design.inferred:
        lines += [f"_No {STUDY_FILE} beside the results: the factors were read off the trials._", ""]
    return lines


def summary(a: Analysis) -> list[str]:
    lines = ["## Summary", ""]
    if a.ok.empty:
        return [*lines, f"No trial succeeded ({len(a.rows)} recorded); see the failed trials below.", ""]
    lines += summary_lines(a)
    if a.design.kind == "search":
        lines += search_summary(a)
    elif not a.effects:
        lines.append("- The study varies nothing that can be compared (one variant).")
    lines += paper_summary(a)
    return [*lines, "", spread_sentence(a), ""]


def spread_sentence(a: Analysis) -> str:
    if len(a.seeds) < 2:
        return (
            "One seed: no spread. Every mean below is a single run, and GAN anomaly detectors swing by 0.1-0.3 AUC "
            "between seeds of the same configuration; re-run with 5 or more seeds before trusting a difference."
        )
    if a.design.kind == "search":
        return (
            "Search trials each ran once, with seeds assigned round-robin: a trial's val AUC includes seed noise, "
            "so re-run the best settings over several seeds (a grid study) before trusting the ranking."
        )
    sd = a.spread
    if sd.empty:
        return "Seed-to-seed spread: not measurable (no variant and category has two successful seeds)."
    return (
        f"Seed-to-seed spread of test AUC within a variant and category: mean std {sd.mean():.3f} "
        f"(range {sd.min():.3f}-{sd.max():.3f}) over {len(a.seeds)} seeds."
    )


def header(a: Analysis) -> list[str]:
    rows = a.rows
    counts = rows["status"].value_counts()
    dataset = first(rows["dataset"]) or (a.study.dataset.get("kind", "?") if a.study else "?")
    image_size = constant(rows, "image_size")
    facts = [
        ("dataset", f"{dataset}{f' at {image_size} px' if image_size is not None else ''}"),
        ("categories", f"{', '.join(a.categories)} ({len(a.categories)})"),
        ("design", design_sentence(a)),
        ("trials", trials_sentence(a, counts)),
        ("seeds", f"{', '.join(map(str, a.seeds))} ({len(a.seeds)})"),
        ("decision threshold", threshold_sentence(rows)),
        ("validation normals", validation_sentence(rows)),
        ("compute", compute_sentence(rows)),
        ("shared settings", shared_settings(rows) or "none"),
        ("code version", ", ".join(sorted(set(rows.get("code_version", pd.Series(dtype=str)).dropna()))) or "?"),
    ]
    devices = sorted(set(rows.get("device", pd.Series(dtype=str)).dropna()) - {""})
    if devices:
        facts.append(("devices", ", ".join(devices)))
    return ["## Study", "", *md_table(["", ""], [[f"**{k}**", v] for k, v in facts]), ""]


VAL_NORMALS_ENOUGH = 20  # `dataset.val_min_images`' default: fewer make a noisy threshold and val AUC


def validation_sentence(rows: pd.DataFrame) -> str:
    """Validation normal images per category, and a warning where a category has fewer than 20."""
    if "n_val_normal" not in rows or rows["n_val_normal"].isna().all():
        return "not recorded"
    counts = rows.groupby("category")["n_val_normal"].min().dropna().astype(int)
    text = ", ".join(f"{c} {n}" for c, n in counts.items())
    few = counts[counts < VAL_NORMALS_ENOUGH]
    if len(few):
        text += (
            f"; **fewer than {VAL_NORMALS_ENOUGH} in {', '.join(few.index)}**: the threshold (a quantile of these "
            f"scores) and val AUC rest on few images there"
        )
    return text


def design_sentence(a: Analysis) -> str:
    d = a.design
    if d.kind == "grid":
        if not d.levels:
            return "grid with no varied factor"
        full = "full factorial " if len(d.levels) > 1 else ""
        factors = "; ".join(f"{c}: {', '.join(format_value(v) for v in vals)}" for c, vals in d.levels.items())
        return f"{full}grid, {len(d.order)} variants ({factors})"
    if d.kind == "loco":
        parts = ", ".join(f"{c}={format_value(v)}" for c, v in d.removed.values())
        return f"leave-one-component-out: base + each component off alone ({parts})"
    search = a.study.search if a.study else None
    if search is None:
        return f"search (unknown sampler) over {', '.join(d.searched)}, ? trials per category, selected on val AUC"
    described = [f"{column(k)} {dim.kind} {next(iter(dim.to_dict().values()))}" for k, dim in search.space.items()]
    stopping = ", ASHA early stopping" if search.scheduler == "asha" else ""
    over = "; ".join(described) or ", ".join(d.searched)
    return (
        f"search ({search.sampler} sampler{stopping}) over {over}, {search.trials} trials per category, "
        f"selected on val AUC"
    )


def trials_sentence(a: Analysis, counts: pd.Series) -> str:
    planned, recorded = a.planned, len(a.rows)
    parts = [f"{recorded} recorded" + (f" of {planned} planned" if planned else "")]
    parts.append(f"{counts.get(OK, 0)} ok")
    parts.append(f"{counts.get(FAILED, 0)} failed")
    if counts.get(STOPPED, 0):
        parts.append(f"{counts[STOPPED]} stopped early by ASHA")
    if planned and recorded < planned:
        parts.append(f"**{planned - recorded} never ran** (interrupted study?)")
    return ", ".join(parts)


def failure_reason(error: str) -> str:
    """A failed row's reason: the exception type its one-line error starts with (`OutOfMemoryError: ...`)."""
    head = error.split(":", 1)[0].strip()
    return head.rsplit(".", 1)[-1] if head and " " not in head else "other"  # torch.OutOfMemoryError -> its name


def failures(a: Analysis) -> list[str]:
    failed = a.rows[a.rows["status"] == FAILED]
    if failed.empty:
        return []
    lines = [f"## Failed trials ({len(failed)})", ""]
    reasons = failed["error"].fillna("").map(failure_reason).value_counts()
    attempts = failed["attempts"] if "attempts" in failed else pd.Series(1, index=failed.index)
    runs = attempts.fillna(1).groupby(failed["error"].fillna("").map(failure_reason)).sum()
    table = [[reason, f"{n}", f"{int(runs[reason])}"] for reason, n in reasons.items()]
    lines += ["By reason (the error's type; runs counts every attempt, retries included):", ""]
    lines += [*md_table(["reason", "trials", "runs"], table), ""]
    shown = failed.head(MAX_FAILED_LISTED)
    table = [[f"`{k}`", e or "(no message)"] for k, e in zip(shown["trial_key"], shown["error"], strict=True)]
    lines += [*md_table(["trial", "error"], table), ""]
    if len(failed) > len(shown):
        lines += [f"... and {len(failed) - len(shown)} more (all in {TRIALS_FILE}, column `error`).", ""]
    return lines


# --- effects, variants, categories ----------------------------------------------------------------------------


def variant_section(a: Analysis) -> list[str]:
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
    table = []
    for v in a.variants:
        g, d = v.params_generator / 1e6, v.params_discriminator / 1e6
        table.append(
            [
                f"`{v.name}`{'*' if v.short_seeds else ''}",
                f"{v.ok} / {v.failed}",
                *(mean_std(v.per_seed[metric]) for metric in METRICS),
                f"{num(g, 3)} / {num(d, 3)}",
                num(v.train_seconds, 1),
                num(v.images_per_second, 1),
            ]
        )
    lines += [*md_table(headers, table), ""]
    if any(v.short_seeds for v in a.variants):
        lines += ["\\* some seed of this variant lacks a category (failed or missing): its mean is over fewer.", ""]
    if len(a.seeds) < 2:
        lines += ["One seed: no spread (± std needs two seeds).", ""]
    return lines


def category_section(a: Analysis, figs: FigureWriter) -> list[str]:
    lines = ["## Per category", ""]
    if a.ok.empty:
        return [*lines, "_No successful trials._", ""]
    mean, std, n = a.category_auc.mean, a.category_auc.std, a.category_auc.n
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
    if len(a.categories) < 2:
        return [*lines, "_Per-category figures skipped: one category._", ""]
    if mean.shape[1] > 1:
        lines += figs(figures.CATEGORY_HEATMAP, lambda p: figures.category_heatmap(mean, p))
    lines += figs(figures.CATEGORY_LINES, lambda p: figures.category_lines(mean, std, p))
    return lines


# --- curves ---------------------------------------------------------------------------------------------------


def roc_section(a: Analysis, figs: FigureWriter) -> list[str]:
    lines = ["## ROC curves", ""]
    if a.roc.frame is None:
        return [*lines, f"_Skipped: {a.roc.note}._", ""]
    return [*lines, *figs(figures.ROC, lambda p: figures.roc_curves(a.roc.frame, p), a.roc.note)]


def history_section(a: Analysis, figs: FigureWriter) -> list[str]:
    lines = ["## Validation AUC during training", ""]
    curves = a.val_auc
    if curves.frame is None:
        return [*lines, f"_Skipped: {curves.note}._", ""]
    highlight = set(curves.highlight) if a.design.kind == "search" else None
    draw = lambda p: figures.val_auc_history(curves.frame, p, highlight)  # noqa: E731
    return [*lines, *figs(figures.VAL_AUC, draw, curves.note)]
