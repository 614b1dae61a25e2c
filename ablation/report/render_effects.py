"""The report's answer per component: each effect's verdict (helps, hurts, negligible, undecided) with its estimate
and corrected interval, how it was reached, its per-category intervals, and the scope the verdicts hold for."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from ..study.schema import format_value
from . import figures
from .health import variant_flags
from .sequential import DECIDED, HELPS, HURTS, NEGLIGIBLE, UNDECIDED
from .stats import Effect, disagreement
from .text import constant, cost_words, md_table, ratio, signed, wins_text

if TYPE_CHECKING:
    from .analysis import Analysis
    from .render import FigureWriter

METRIC_WORDS = {
    "auc": "test AUC",
    "val_auc": "validation AUC (`analysis.metric: val_auc`: a choice made without the test set)",
}
UNITS = {"auc": "AUC", "val_auc": "val AUC"}
# Settings the scope sentence names (what a verdict holds for), with how they read.
SCOPE = (("iterations", "{} iterations"), ("batch_size", "batch {}"), ("lr", "lr {}"))


def verdict_sentence(e: Effect, a: Analysis) -> str:
    """One plain-words line: "attention (off -> on): undecided, +0.020 AUC [-0.051, +0.091] (97.5% interval, 16
    pairs over 8 seeds; 8/16 pairs higher): no evidence either way ...; costs 1.16x params, 2.10x train time"."""
    if e.decision is None:
        return f"**{e.name}** ({e.change}): not estimable, no matched pairs ({e.dropped} dropped)"
    d = e.decision
    kind = "interaction: " if e.interaction else ""
    verdict = f"**{d.verdict}**" if d.verdict in DECIDED else d.verdict
    unit = UNITS[a.settings.metric]
    text = f"**{e.name}** ({kind}{e.change}): {verdict}, {signed(d.mean)} {unit} {interval_text(e)} ({evidence(e)})"
    text += f": {reason(e, a)}"
    split = disagreement(e)
    if split:
        text += "; **categories disagree**: " + ", ".join(f"{v} on {c}" for c, v in split)
        text += " (the pooled effect averages opposite effects)"
    costs = cost_words(e.cost)
    text = f"{text}; costs {costs}" if costs and not e.interaction else text
    flags = flag_words(e, a)
    return f"{text}; **check the models**: {flags}" if flags else text


def flag_words(e: Effect, a: Analysis) -> str:
    """The health flags of the variants an effect compares (below 0.5, wide seed spread, still improving): a
    verdict about models like these may not hold for trained, stable ones."""
    flags = variant_flags(a)
    named = [f"`{v}` {', '.join(flags[v])}" for v in e.variants if flags.get(v)]
    return "; ".join(named)


def interval_text(e: Effect) -> str:
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return "[no interval: one pair]" if e.n == 1 else "[no interval]"
    return f"[{e.low:+.3f}, {e.high:+.3f}]"


def evidence(e: Effect) -> str:
    d = e.decision
    level = f"{100 * d.confidence:.3g}% interval, " if math.isfinite(d.confidence) else ""
    return f"{level}{d.n} pairs over {d.seeds} seeds; {wins_text(e)}"


def reason(e: Effect, a: Analysis) -> str:
    """Why the verdict is what it is, in words, and at which look it was reached."""
    d, m = e.decision, a.settings.min_effect
    if d.verdict == NEGLIGIBLE:
        text = f"the interval lies inside ±{m:g}, the smallest effect that matters"
    elif d.verdict == HELPS:
        text = "the interval lies above 0" + (f" (below {m:g}: a small gain)" if d.high < m else "")
    elif d.verdict == HURTS:
        text = "the interval lies below 0" + (f" (above -{m:g}: a small loss)" if d.low > -m else "")
    elif d.n < 2:
        text = "no evidence either way: too few pairs for an interval"
    else:
        text = f"no evidence either way: the interval covers 0 and reaches beyond ±{m:g}"
    looks = a.study.adaptive_seeds.looks() if a.study and a.study.adaptive_seeds else []
    if len(looks) > 1:
        text += f"; look {d.look} of {len(looks)}" + (" (decided)" if d.verdict in DECIDED else " (budget spent)")
    return text


def method_paragraph(a: Analysis) -> str:
    """How the verdicts were reached, in a few sentences (the full rule: docs/statistics.md)."""
    s = a.settings
    m = len(a.effects) + len(a.interactions)
    pairing = (
        "base - component off, matched on seed and category"
        if a.design.kind == "loco"
        else "after - before, matched on every other factor, seed and category"
    )
    correction = (
        f"1 - {s.alpha:g}/{m} (Bonferroni over the {m} effects tested)" if m > 1 else f"1 - {s.alpha:g} (one effect)"
    )
    r = a.study.adaptive_seeds if a.study else None
    looks = (
        f" Seeds were added adaptively ({r.initial} first, then {r.step} at a time up to {r.max}, for the variants "
        f"of the effects still undecided); alpha is spent over the looks at {', '.join(map(str, r.looks()))} seeds "
        f"(Lan-DeMets, Pocock type), so repeated looks do not inflate it, and an effect's numbers are those of the "
        f"look that decided it."
        if r
        else ""
    )
    return (
        f"Effect: the paired difference in {METRIC_WORDS[s.metric]} ({pairing}). Verdicts hold jointly at "
        f"alpha = {s.alpha:g}: each "
        f"interval is a paired t-interval at confidence {correction}.{looks} *helps* / *hurts*: the interval "
        f"excludes 0; *negligible*: it lies inside ±{s.min_effect:g} "
        f"(`analysis.min_effect`; two one-sided tests); *undecided*: neither, so more seeds are needed. Cost: mean "
        f"after / mean before over the same pairs."
    )


def verdict_table(
    effects: list[Effect],
    cost: bool = True,
    flags: dict[str, list[str]] | None = None,
    looks: int = 0,
    unit: str = "AUC",
) -> list[str]:
    """The effects' table; `looks` > 1 (adaptive seeds) adds the look that decided each effect."""
    headers = ["factor", "change", f"effect on {unit} [interval]", "level", "pairs (seeds)", "pairs higher", "verdict"]
    headers += ["decided at"] if looks > 1 else []
    headers += ["models flagged"] if flags is not None else []
    if cost:
        headers += ["params", "train time", "images/s"]
    body = []
    for e in effects:
        d = e.decision
        if d is None:
            row = [f"`{e.name}`", e.change, "—", "—", f"0 ({e.dropped} dropped)", "—", "not estimable"]
            row += ["—"] if looks > 1 else []
        else:
            verdict = f"**{d.verdict}**" if d.verdict in DECIDED else d.verdict
            level = f"{100 * d.confidence:.3g}%" if math.isfinite(d.confidence) else "—"
            pairs = f"{d.n} ({d.seeds})"
            row = [f"`{e.name}`", e.change, f"{signed(d.mean)} {interval_text(e)}", level, pairs, wins_text(e), verdict]
            if looks > 1:
                row.append(f"look {d.look} of {looks}" if d.verdict in DECIDED else f"not decided (look {d.look})")
        if flags is not None:
            row.append(", ".join(f"`{v}`" for v in e.variants if flags.get(v)) or "none")
        if cost:
            row += [ratio(e.cost.get(k)) for k in ("params", "train_seconds", "images_per_second")]
        body.append(row)
    return md_table(headers, body)


def category_table(effects: list[Effect]) -> list[str]:
    """Per effect and category: the estimate and interval over that category's seeds, at the pooled interval's
    confidence, and its verdict; empty when the study has one category."""
    with_categories = [e for e in effects if e.by_category]
    if not with_categories:
        return []
    categories = list(dict.fromkeys(c for e in with_categories for c in e.by_category))
    body = []
    for e in with_categories:
        cells = []
        for c in categories:
            d = e.by_category.get(c)
            if d is None:
                cells.append("—")
                continue
            bounds = f"[{d.low:+.3f}, {d.high:+.3f}]" if math.isfinite(d.low) else "[no interval]"
            cells.append(f"{signed(d.mean)} {bounds} {d.verdict if d.verdict != UNDECIDED else '?'}")
        pooled = e.decision.verdict if e.decision else "—"
        body.append([f"`{e.name}`", *cells, pooled + (" (categories disagree)" if disagreement(e) else "")])
    return [
        "### Per category",
        "",
        "The same interval over each category's pairs alone (seeds are the replicates); `?` = undecided. A pooled "
        "verdict averages the categories: where they disagree, the component's effect depends on the category.",
        "",
        *md_table(["factor", *categories, "pooled"], body),
        "",
    ]


def scope_sentence(a: Analysis) -> str:
    """What the verdicts hold for: the dataset, categories, image size, training length and widths of the runs."""
    rows = a.ok if not a.ok.empty else a.rows
    dataset = constant(rows, "dataset") or "?"
    parts = [f"{dataset} ({', '.join(a.categories)})"]
    size = constant(rows, "image_size")
    if size is not None:
        parts[0] += f" at {size} px"
    for col, words in SCOPE:
        value = _values(rows, col)
        if value:
            parts.append(words.format(value))
    widths = [_values(rows, c) for c in ("base_channels", "max_channels", "ndf")]
    if all(widths):
        parts.append(f"widths {widths[0]}-{widths[1]} (discriminator {widths[2]})")
    for col in ("score_normalize", "score_reduce"):
        value = _values(rows, col)
        if value:
            parts.append(f"{col} {value}")
    return (
        "These verdicts hold for what was run: "
        + ", ".join(parts)
        + "; other data, sizes or training lengths may differ."
    )


def _values(rows: pd.DataFrame, col: str) -> str:
    if col not in rows:
        return ""
    values = [format_value(v) for v in rows[col].dropna().unique()]
    return "/".join(sorted(values)) if values else ""


def summary_lines(a: Analysis) -> list[str]:
    """The summary's verdict lines: every main effect, the decided interactions, then the scope."""
    lines = [f"- {verdict_sentence(e, a)}" for e in a.effects]
    lines += [f"- {verdict_sentence(e, a)}" for e in a.interactions if e.decision and e.decision.verdict in DECIDED]
    if a.effects:
        undecided = [e.name for e in a.effects if e.decision and e.decision.verdict == UNDECIDED]
        if undecided:
            lines.append(f"- Undecided: {', '.join(undecided)}. {more_seeds(a)}")
        lines.append(f"- {scope_sentence(a)}")
    return lines


def more_seeds(a: Analysis) -> str:
    r = a.study.adaptive_seeds if a.study else None
    if r:
        return "The seed or time budget ran out first; raise `adaptive_seeds.max` (or the budget) and `--resume`."
    return (
        "Run more seeds (e.g. `adaptive_seeds: {initial: 3, max: 12, step: 2}` adds them until each effect is decided)."
    )


def effect_section(a: Analysis, figs: FigureWriter) -> list[str]:
    lines = ["## Component effects", ""]
    if not a.effects:
        return [*lines, "_No effects: the study has one variant, so there is nothing to compare._", ""]
    flags = variant_flags(a)
    looks = len(a.study.adaptive_seeds.looks()) if a.study and a.study.adaptive_seeds else 0
    unit = UNITS[a.settings.metric]
    lines += [method_paragraph(a), "", *verdict_table(a.effects, flags=flags, looks=looks, unit=unit), ""]
    if any(flags.values()):
        lines += [
            "A flagged model ranks below chance, swings by more than 0.1 AUC between seeds, or was still improving at "
            "the end of training (see *Trained enough* below): a verdict about such models may not hold for trained, "
            "stable ones.",
            "",
        ]
    lines += notes(a.effects)
    lines += category_table(a.effects + a.interactions)
    if a.all_effects:
        lines += figs(figures.EFFECTS, lambda p: figures.forest_plot(a.all_effects, p, a.settings.min_effect))
    else:
        lines += ["_Forest plot skipped: no effect could be estimated (no matched pairs)._", ""]
    if a.interactions:
        lines += [
            "### Two-factor interactions",
            "",
            "Per matched cell, (both switched - first only) - (second only - neither): positive means the first "
            "factor's effect is larger when the second factor is switched too. Same interval and verdicts as above.",
            "",
            *verdict_table(a.interactions, cost=False, looks=looks, unit=unit),
            "",
            *notes(a.interactions),
        ]
    elif a.design.kind == "grid" and len(a.design.levels) > 1:
        lines += ["_Interactions are computed between two-level factors only._", ""]
    return lines


def notes(effects: list[Effect]) -> list[str]:
    """Pairs left out of an effect, per effect (a failed, stopped or missing side)."""
    lines = [
        f"- `{e.name}`: {e.dropped} pair{'s' if e.dropped > 1 else ''} dropped (one side failed, stopped or missing)."
        for e in effects
        if e.dropped
    ]
    return [*lines, ""] if lines else []
