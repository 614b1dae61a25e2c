"""The report's section on a `search:` study: its best trials (ranked by val AUC, never by test AUC), the
optimisation history, and Optuna's parameter importances."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import figures
from .importance import EVALUATOR, distributions, inferred_distributions, param_importances
from .report_text import md_table, num, trial_index, trial_name
from .results import OK
from .stats import fmt

if TYPE_CHECKING:
    from .report import Page

BEST_TRIALS = 10


def search_summary(page: Page) -> list[str]:
    """Per category: the best trial by val AUC, and the parameter that mattered most."""
    lines = []
    table, _ = importances(page)
    for category, rows in page.ok.groupby("category", sort=False):
        rows = rows[np.isfinite(rows["val_auc"])]
        if rows.empty:
            lines.append(f"- {category}: no finished trial reported a val AUC.")
            continue
        best = rows.loc[rows["val_auc"].idxmax()]
        params = ", ".join(f"{c}={fmt(best[c])}" for c in page.d.searched)
        top = ""
        if table is not None and category in table and table[category].max() > 0:
            top = f"; {table[category].idxmax()} matters most (fANOVA importance {table[category].max():.2f})"
        lines.append(
            f"- {category}: best trial `{trial_name(best['trial_key'])}` ({params}): val AUC "
            f"{best['val_auc']:.3f}, test AUC {num(best['auc'])} (selected on val AUC only){top}."
        )
    return lines


def search_section(page: Page) -> list[str]:
    """Best trials, the optimisation history and the importances."""
    lines = ["## Search", ""]
    rows = page.rows.assign(index=[trial_index(k) for k in page.rows["trial_key"]])
    lines += best_trials(page, rows)
    lines += page.figure(
        "search_history.png",
        "search history",
        lambda p: figures.search_history(rows, p),
        "Val AUC of each trial in sampling order and the best so far, per category.",
    )
    lines += importance_section(page)
    return lines


def best_trials(page: Page, rows: pd.DataFrame) -> list[str]:
    """The top trials of each category's search by val AUC (the search's own metric), test AUC alongside."""
    lines = [
        f"### Best trials (by val AUC, at most {BEST_TRIALS} per category)",
        "",
        "Selected on val AUC only: the test AUC is shown beside it, never used to rank.",
        "",
    ]
    ok = rows[(rows["status"] == OK) & np.isfinite(rows["val_auc"])]
    if ok.empty:
        return [*lines, "_No finished trial reported a val AUC._", ""]
    headers = ["rank", "trial", "category", "seed", *page.d.searched, "val AUC", "test AUC", "F1", "train s"]
    body = []
    for category, g in ok.groupby("category", sort=False):
        for rank, (_, t) in enumerate(g.sort_values("val_auc", ascending=False).head(BEST_TRIALS).iterrows(), 1):
            body.append(
                [
                    str(rank),
                    f"`{trial_name(t['trial_key'])}`",
                    category,
                    str(t["seed"]),
                    *(fmt(t[c]) for c in page.d.searched),
                    f"{t['val_auc']:.3f}",
                    num(t["auc"]),
                    num(t["f1"]),
                    num(t["train_seconds"], 1),
                ]
            )
    return [*lines, *md_table(headers, body), ""]


def importances(page: Page) -> tuple[pd.DataFrame | None, list[str]]:
    """(parameter x category importances, or None; a note per category without them), computed once."""

    def compute() -> tuple[pd.DataFrame | None, list[str]]:
        space = ((page.r.study or {}).get("search") or {}).get("space") or {}
        dists = distributions(space) if space else inferred_distributions(page.ok, page.d.searched)
        results, notes = {}, []
        for category, rows in page.rows.groupby("category", sort=False):
            values, note = param_importances(rows, dists)
            if values:
                results[category] = values
            else:
                notes.append(f"- {category}: {note}.")
        table = pd.DataFrame(results).reindex(list(dists)).fillna(0.0) if results else None
        return table, notes

    return page.once("importances", compute)


def importance_section(page: Page) -> list[str]:
    lines = ["### Parameter importances", "", f"Evaluator: {EVALUATOR}, on the finished trials' val AUC.", ""]
    table, notes = importances(page)
    if table is None:
        return [*lines, *notes, ""]
    body = [[f"`{p}`", *(f"{table.loc[p, c]:.2f}" for c in table.columns)] for p in table.index]
    lines += [*md_table(["parameter", *table.columns], body), "", *notes, *([""] if notes else [])]
    lines += page.figure("importances.png", "parameter importances", lambda p: figures.importance_bars(table, p))
    return lines
