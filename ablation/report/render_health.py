"""The report's section "Trained enough, and pointing the right way?": per variant and category, the test AUC of each
part of the score and the flags (`health`) that change what a verdict means, each raised kind said in one sentence."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .health import BELOW_HALF, CTX_SIGNAL, IMPROVING, PARTS, RULE, SPREAD_LIMIT, VAL_SIGNAL
from .text import cell, md_table

if TYPE_CHECKING:
    from .analysis import Analysis

MEANINGS = {
    BELOW_HALF: f"**{BELOW_HALF}**: the model ranks defects as more normal than normal images there (mean test AUC "
    "over seeds); it does not detect, so an effect involving it compares failures, not the component.",
    "spread": f"**spread** (max - min of test AUC over seeds, flagged above {SPREAD_LIMIT}): training is unstable "
    "there; a difference smaller than the spread needs more seeds before a verdict can rest on it.",
    IMPROVING: f"**{IMPROVING}**: training stopped before it converged; the verdict compares under-trained models and "
    "may change with more `train.iterations`.",
}
PART_NAMES = {"score": "AUC (score)", "rec": "rec alone", "rec_max": "rec max alone", "lat": "lat alone"}


def health_section(a: Analysis) -> list[str]:
    """One table (variant x category: part AUCs, spread, trend, flags), then what each raised flag means."""
    lines = [
        "## Trained enough, and pointing the right way?",
        "",
        "Test AUC of the score as ranked and, for skip models, of its parts alone (reconstruction error `rec`, its "
        "smoothed map's maximum `rec max` (`model.score_reduce`), latent error `lat`), mean ± std over seeds; the seed "
        "spread; and the trend over the last fifth of training.",
        "",
    ]
    table = a.health.table
    if table.empty:
        return [*lines, "_No successful trials._", ""]
    parts = [p for p in PARTS if p == "score" or table[f"auc_{p}_mean"].notna().any()]
    headers = ["variant", "category", *(PART_NAMES[p] for p in parts), "spread (max - min)", "trend", "flags"]
    body = []
    for _, r in table.iterrows():
        aucs = [cell(r[f"auc_{p}_mean"], r[f"auc_{p}_std"], r["seeds"]) for p in parts]
        spread = "—" if not math.isfinite(r["spread"]) else f"{r['spread']:.2f}"
        body.append([f"`{r['variant']}`", r["category"], *aucs, spread, _trend(r), ", ".join(r["flags"]) or "—"])
    lines += [*md_table(headers, body), "", RULE, ""]
    raised = {BELOW_HALF: False, "spread": False, IMPROVING: False}
    for flags in table["flags"]:
        for flag in flags:
            raised["spread" if flag.startswith("spread") else flag] = True
    lines += [f"- {MEANINGS[kind]}" for kind, up in raised.items() if up]
    if (table["improving"] & (table["signal"] == CTX_SIGNAL)).any():
        lines.append(
            "- Judged on the ctx loss, still improving says only that reconstruction was still learning; the AUC may "
            "already have levelled off (set `train.eval_every` to judge on val AUC)."
        )
    if _inverted_part(table, parts):
        lines.append(
            "- A part alone below 0.5 points the wrong way: it pulls the mixed score down (`model.score_lambda` sets "
            "the mix)."
        )
    if not any(raised.values()):
        lines.append("- No flag raised.")
    lines += [f"- _{note}._" for note in a.health.notes]
    return [*lines, "", *_validation_table(table, parts)]


def _validation_table(table, parts: list[str]) -> list[str]:
    """The same parts' AUC on the validation split: what a choice of score (`model.score_reduce`, `score_lambda`)
    may rest on without test labels. Only where some part besides the score was saved."""
    parts = [p for p in parts if table[f"val_{p}_mean"].notna().any()]
    if len(parts) < 2:
        return []
    headers = ["variant", "category", *(PART_NAMES[p] for p in parts)]
    body = [
        [f"`{r['variant']}`", r["category"], *(cell(r[f"val_{p}_mean"], r[f"val_{p}_std"], r["seeds"]) for p in parts)]
        for _, r in table.iterrows()
    ]
    return [
        "Validation AUC of the same parts (held-out normal images and synthetic defects, no test labels): what a "
        "choice of score, `model.score_reduce` or `score_lambda`, may rest on. Synthetic defects need not rank the "
        "parts as real ones do; the test columns above show whether they did.",
        "",
        *md_table(headers, body),
        "",
    ]


def _trend(r) -> str:
    if r["signal"] == VAL_SIGNAL:
        return f"{r['change']:+.3f} val AUC"
    if r["signal"] == CTX_SIGNAL:
        return f"{-r['change']:+.0%} ctx loss"
    return "—"


def _inverted_part(table, parts: list[str]) -> bool:
    """Some part alone ranks below 0.5 where the mixed score does not."""
    for p in parts:
        if p != "score" and ((table[f"auc_{p}_mean"] < 0.5) & (table["auc_score_mean"] >= 0.5)).any():
            return True
    return False
