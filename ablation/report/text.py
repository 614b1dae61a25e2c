"""Markdown pieces of the report: tables, number formats, and the sentences that say a result in plain words.
Functions of the analysis' frames and numbers; the statistics themselves are computed in `stats` and `analysis`."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..study.schema import format_value
from .stats import ALPHA, HELPS, HURTS, Effect

# Settings worth stating in the header when every trial shares them.
SHOWN_SETTINGS = (
    "model",
    "image_size",
    "iterations",
    "batch_size",
    "lr",
    "w_adv",
    "w_ctx",
    "w_lat",
    "score_lambda",
    "score_normalize",
    "score_reduce",
    "base_channels",
    "max_channels",
    "depth",
    "ndf",
    "nz",
    "eval_every",
)


def effect_sentence(e: Effect) -> str:
    """The distribution-free check of an effect (bootstrap interval, signed-rank p, BH q) as one plain-words line,
    for scripts; the report's verdicts are `render_effects.verdict_sentence`. E.g. "attention (off -> on): helps,
    +0.041 AUC [+0.012, +0.070], p = 0.031 (12/12 pairs higher); costs 1.05x params, 1.4x train time", and why when
    there is no verdict."""
    if e.n == 0:
        return f"**{e.name}** ({e.change}): not estimable, no matched pairs ({e.dropped} dropped)"
    if e.interaction:
        text = f"**{e.name}** (interaction: {e.change}): {signed(e.mean)} AUC {ci_text(e)}, {p_text(e.p)}"
        return f"{text} (but q = {e.q:.2f}: may be chance)" if chance(e) else text
    text = f"**{e.name}** ({e.change}): {e.verdict}, {signed(e.mean)} AUC {ci_text(e)}, {p_text(e.p)} ({wins_text(e)})"
    costs = cost_words(e.cost)
    text = f"{text}; costs {costs}" if costs else text
    if e.verdict in (HELPS, HURTS) and chance(e):
        return f"{text} (but q = {e.q:.2f} after adjusting for the effects tested: may be chance)"
    return f"{text} ({e.note})" if e.note and e.verdict not in (HELPS, HURTS) else text


def chance(e: Effect) -> bool:
    """A helps/hurts verdict that does not survive the adjustment for multiple effects."""
    return math.isfinite(e.q) and e.q >= ALPHA


def cost_words(cost: dict[str, float]) -> str:
    names = {"params": "params", "train_seconds": "train time", "images_per_second": "images/s"}
    parts = [f"{ratio(v)} {names[k]}" for k, v in cost.items() if math.isfinite(v)]
    return ", ".join(parts)


def threshold_sentence(rows: pd.DataFrame) -> str:
    """How accuracy/precision/recall/F1 were thresholded, in words, per rule the trials used."""
    if "threshold_rule" not in rows:
        return "not recorded"
    parts = []
    quantile = rows["threshold_quantile"] if "threshold_quantile" in rows else pd.Series(0.95, rows.index)
    quantile = quantile.where(rows["threshold_rule"] == "val_quantile", 0.0)  # the quantile matters to that rule only
    for (rule, q), g in rows.groupby([rows["threshold_rule"], quantile.round(6)]):
        if rule == "val_quantile":
            percentile, budget = round(q * 100, 6), round((1 - q) * 100, 6)
            text = (
                f"{_ordinal(percentile)} percentile of the validation normal images' scores (a {budget:g}% "
                f"false-positive budget on held-out normal images)"
            )
        else:
            text = "the F1-optimal threshold on the validation split (normal images and their synthetic defects)"
        used = g.get("threshold_rule_used", pd.Series(dtype=str))
        fallback = int(((used != rule) & (used != "") & used.notna()).sum())
        if fallback:
            text += f"; fell back to val_quantile in {fallback} trials (no defects in the validation split)"
        parts.append(text + (f" ({len(g)} trials)" if rows["threshold_rule"].nunique() > 1 else ""))
    return "; ".join(parts) + "; chosen without test labels"


def compute_sentence(rows: pd.DataFrame) -> str:
    seconds = rows["train_seconds"].fillna(0).sum() + rows["score_seconds"].fillna(0).sum()
    text = f"{duration_words(seconds)} of training and scoring summed over trials"
    if "started_at" in rows and "finished_at" in rows:
        start = pd.to_datetime(rows["started_at"], utc=True, errors="coerce").min()
        end = pd.to_datetime(rows["finished_at"], utc=True, errors="coerce").max()
        if pd.notna(start) and pd.notna(end):
            wall = duration_words((end - start).total_seconds())
            text += f"; wall time {wall} ({start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC)"
    return text


def shared_settings(rows: pd.DataFrame) -> str:
    shown = [(c, constant(rows, c)) for c in SHOWN_SETTINGS if c != "image_size"]
    return ", ".join(f"{c}={format_value(v)}" for c, v in shown if v is not None)


def md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table ("|" in cells escaped: trial keys contain it)."""

    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *(line(r) for r in rows)]


def mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def cell(mean: float, std: float, n: int) -> str:
    if not n or not math.isfinite(mean):
        return "—"
    return f"{mean:.3f}" if n < 2 or not math.isfinite(std) else f"{mean:.3f} ± {std:.3f}"


def ci_text(e: Effect) -> str:
    """The bootstrap interval of the distribution-free check."""
    low, high = e.bootstrap
    if not (math.isfinite(low) and math.isfinite(high)):
        return "[no interval: one pair]" if e.n == 1 else "[no interval]"
    return f"[{low:+.3f}, {high:+.3f}]"


def p_text(p: float) -> str:
    if not math.isfinite(p):
        return "p: n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def wins_text(e: Effect) -> str:
    ties = e.n - e.wins - e.losses
    return f"{e.wins}/{e.n} pairs higher" + (f", {ties} tied" if ties else "")


def signed(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.3f}"


def ratio(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.2f}x"


def num(x: float, digits: int = 3) -> str:
    return "—" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}f}"


def _ordinal(x: float) -> str:
    """95 -> "95th", 99.5 -> "99.5th", 91 -> "91st"."""
    if not float(x).is_integer():
        return f"{x:.3g}th"
    k = int(x)
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def duration_words(seconds: float) -> str:
    """A duration in words: 12.3 s, 4.5 min, 2 h 05 min."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def constant(rows: pd.DataFrame, column: str) -> Any:
    """The column's value (as a plain Python value) if every trial has the same one, else None."""
    values = rows[column].dropna().unique() if column in rows else []
    if len(values) != 1:
        return None
    return values[0].item() if hasattr(values[0], "item") else values[0]


def first(values: pd.Series) -> str:
    values = [v for v in values.dropna().unique() if v != ""]
    return str(values[0]) if values else ""
