"""The report's section on a `search:` study: its best trials (ranked by val AUC, never by test AUC), the
optimisation history, and Optuna's parameter importances."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..results.ledger import OPTUNA_FILE
from ..study.schema import format_value, trial_name
from . import figures
from .analysis import BEST_TRIALS, Analysis
from .importance import EVALUATOR
from .text import md_table, num

if TYPE_CHECKING:
    from .render import FigureWriter


def search_summary(a: Analysis) -> list[str]:
    """Per category: the best trial by val AUC, and the parameter that mattered most."""
    lines = []
    table = a.search.importances
    for category, best in a.search.best.items():
        if best is None:
            lines.append(f"- {category}: no finished trial reported a val AUC.")
            continue
        params = ", ".join(f"{c}={format_value(best[c])}" for c in a.design.searched)
        top = ""
        if table is not None and category in table and table[category].max() > 0:
            top = f"; {table[category].idxmax()} matters most (fANOVA importance {table[category].max():.2f})"
        lines.append(
            f"- {category}: best trial `{trial_name(best['trial_key'])}` ({params}): val AUC "
            f"{best['val_auc']:.3f}, test AUC {num(best['auc'])} (selected on val AUC only){top}."
        )
    return lines


def search_section(a: Analysis, figs: FigureWriter) -> list[str]:
    """Best trials, the optimisation history and the importances."""
    lines = ["## Search", "", *best_trials(a), *optuna_history(a)]
    lines += figs(
        figures.SEARCH_HISTORY,
        lambda p: figures.search_history(a.search.rows, p),
        "Val AUC of each trial in sampling order and the best so far, per category.",
    )
    return lines + importance_section(a, figs)


def optuna_history(a: Analysis) -> list[str]:
    """Where the search's Optuna history is, and the command that opens it."""
    path = a.out / OPTUNA_FILE
    if not path.is_file():
        return []
    return [
        f"The Optuna history (one Optuna study per category, named `<study>/<category>`; each trial's name and seed "
        f"are user attributes) is in `{OPTUNA_FILE}`: `optuna-dashboard sqlite:///{path.resolve()}` opens it.",
        "",
    ]


def best_trials(a: Analysis) -> list[str]:
    """The top trials of each category's search by val AUC (the search's own metric), test AUC alongside."""
    lines = [
        f"### Best trials (by val AUC, at most {BEST_TRIALS} per category)",
        "",
        "Selected on val AUC only: the test AUC is shown beside it, never used to rank.",
        "",
    ]
    if a.search.top.empty:
        return [*lines, "_No finished trial reported a val AUC._", ""]
    headers = ["rank", "trial", "category", "seed", *a.design.searched, "val AUC", "test AUC", "F1", "train s"]
    body = []
    for category, g in a.search.top.groupby("category", sort=False):
        for rank, (_, t) in enumerate(g.iterrows(), 1):
            body.append(
                [
                    str(rank),
                    f"`{trial_name(t['trial_key'])}`",
                    category,
                    str(t["seed"]),
                    *(format_value(t[c]) for c in a.design.searched),
                    f"{t['val_auc']:.3f}",
                    num(t["auc"]),
                    num(t["f1"]),
                    num(t["train_seconds"], 1),
                ]
            )
    return [*lines, *md_table(headers, body), ""]


def importance_section(a: Analysis, figs: FigureWriter) -> list[str]:
    lines = ["### Parameter importances", "", f"Evaluator: {EVALUATOR}, on the finished trials' val AUC.", ""]
    table, notes = a.search.importances, a.search.importance_notes
    if table is None:
        return [*lines, *notes, ""]
    body = [[f"`{p}`", *(f"{table.loc[p, c]:.2f}" for c in table.columns)] for p in table.index]
    lines += [*md_table(["parameter", *table.columns], body), "", *notes, *([""] if notes else [])]
    return lines + figs(figures.IMPORTANCES, lambda p: figures.importance_bars(table, p))
