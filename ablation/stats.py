"""Paired effects of switching a study factor: the mean AUC difference over matched runs, a bootstrap interval
(scipy.stats.bootstrap), a Wilcoxon signed-rank p-value (scipy.stats.wilcoxon) and a plain-words verdict.

A pair is two runs that differ in the switched factor only: same values of every other factor, same seed, same
category. Runs without a partner (a failed, stopped or missing cell) are dropped and counted, never imputed.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
RESAMPLES = 9999
# The four switches of the paper's architecture, each with the paper's choice ("on") first.
SWITCHES = {"attention": (True, False), "conv": ("dsc", "standard"), "down": ("maxpool", "strided"),
            "up": ("bilinear", "transposed")}  # fmt: skip
HELPS, HURTS, NO_EVIDENCE, NOT_ESTIMABLE = "helps", "hurts", "no evidence either way", "not estimable"
COST_COLUMNS = ("params", "train_seconds", "images_per_second")


@dataclass(frozen=True)
class Effect:
    """The paired difference `after - before` of one change of one factor (or one interaction of two factors)."""

    name: str  # "attention", "conv", "w_adv=1", "attention x conv"
    change: str  # readable: "off -> on", "standard -> dsc", "0.5 -> 1"
    diffs: np.ndarray  # one per matched pair
    dropped: int  # pairs with one side missing, failed or stopped
    mean: float
    low: float  # CI bounds; NaN when there is no interval
    high: float
    p: float  # Wilcoxon signed-rank, two-sided; NaN when not computed
    verdict: str
    note: str  # why the verdict is what it is, when that is not obvious ("" otherwise)
    cost: dict[str, float] = field(default_factory=dict)  # cost column -> ratio after / before
    interaction: bool = False

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def wins(self) -> int:
        return int((self.diffs > 0).sum())

    @property
    def losses(self) -> int:
        return int((self.diffs < 0).sum())


def summarize(diffs: Any) -> tuple[float, float, float, float, str, str]:
    """(mean, low, high, p, verdict, note) of paired differences."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan, NOT_ESTIMABLE, "no matched pairs"
    mean = float(d.mean())
    if n == 1:
        return mean, math.nan, math.nan, math.nan, NO_EVIDENCE, "one pair: no interval"
    low, high = interval(d)
    p, min_p = signed_rank(d)
    notes = []
    if min_p > ALPHA:
        nonzero = int((d != 0).sum())
        notes.append(f"{nonzero} non-zero pairs: the signed-rank test cannot reach p < {ALPHA:g} with 5 or fewer")
    significant = math.isfinite(p) and p < ALPHA and min_p <= ALPHA
    if low > 0 and significant:
        verdict = HELPS
    elif high < 0 and significant:
        verdict = HURTS
    else:
        verdict = NO_EVIDENCE
        if low <= 0 <= high:
            notes.insert(0, "the interval covers 0")
        elif not notes:
            notes.append(f"the interval excludes 0 but p = {p:.2g}")
    return mean, low, high, p, verdict, "; ".join(notes)


def interval(d: np.ndarray) -> tuple[float, float]:
    """95% bootstrap interval of the mean: BCa, or percentile where BCa is undefined; [d, d] when all are equal."""
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        # Every pair moved by the same amount: no sampling spread; BCa divides by zero here.
        return float(d.mean()), float(d.mean())
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.bootstrap(
                (d,),
                np.mean,
                confidence_level=CONFIDENCE,
                n_resamples=RESAMPLES,
                method=method,
                rng=np.random.default_rng(0),
            )
        low, high = result.confidence_interval
        if math.isfinite(low) and math.isfinite(high):
            return float(low), float(high)
    return math.nan, math.nan


def signed_rank(d: np.ndarray) -> tuple[float, float]:
    """(two-sided Wilcoxon signed-rank p-value, the smallest p the exact test could give with these pairs).

    Zero differences are dropped (`zero_method="wilcox"`); with n non-zero pairs the exact two-sided test cannot go
    below 2 / 2**n, so with 5 or fewer no p-value reaches 0.05 however large the effect."""
    nonzero = int((d != 0).sum())
    min_p = 2.0 / 2**nonzero if nonzero else 1.0
    if nonzero == 0:
        return math.nan, min_p
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return p, min_p


def paired(rows: pd.DataFrame, factor: str, before: Any, after: Any, match: list[str], metric: str = "auc"):
    """Matched runs of one factor change: (a frame with `before`/`after` metric values and `<cost>_before`/
    `<cost>_after` columns, the number of cells left without a partner). `rows`: every trial, failed ones with
    NaN metrics, so a failed run counts as a dropped pair rather than vanishing."""
    subset = rows[rows[factor].isin([before, after])]
    values = [c for c in (metric, *COST_COLUMNS) if c in subset]
    sides = subset.assign(_side=np.where(subset[factor] == after, "after", "before"))
    wide = sides.groupby([*match, "_side"])[values].first().unstack("_side")  # columns: (value, side)
    if wide.empty:
        return pd.DataFrame(columns=["before", "after"]), 0
    present = wide[metric].reindex(columns=["before", "after"])
    ok = present.notna().all(axis=1)
    dropped = int((~ok).sum())
    out = present[ok].copy()
    for col in values[1:]:
        cost = wide[col].reindex(columns=["before", "after"])[ok]
        out[f"{col}_before"], out[f"{col}_after"] = cost["before"], cost["after"]
    return out, dropped


def make_effect(name: str, change: str, pairs: pd.DataFrame, dropped: int) -> Effect:
    diffs = (pairs["after"] - pairs["before"]).to_numpy(dtype=np.float64)
    mean, low, high, p, verdict, note = summarize(diffs)
    return Effect(name, change, diffs, dropped, mean, low, high, p, verdict, note, cost_ratios(pairs))


def cost_ratios(pairs: pd.DataFrame) -> dict[str, float]:
    """Mean cost after / mean cost before over the matched pairs (params, train time, images per second)."""
    out = {}
    for col in COST_COLUMNS:
        if f"{col}_before" not in pairs or pairs.empty:
            continue
        before, after = pairs[f"{col}_before"].mean(), pairs[f"{col}_after"].mean()
        out[col] = float(after / before) if before > 0 and math.isfinite(after) else math.nan
    return out


def reference_level(factor: str, levels: list, base: Any) -> Any:
    """The level other levels are compared against: a switch's "off", else the study's base value, else the first."""
    if factor in SWITCHES and set(levels) == set(SWITCHES[factor]):
        return SWITCHES[factor][1]
    return base if base in levels else levels[0]


def grid_effects(rows: pd.DataFrame, levels: dict[str, list], bases: dict[str, Any]) -> list[Effect]:
    """Main effects of a grid: each level of each factor against its reference level, paired on everything else."""
    effects = []
    for factor, values in levels.items():
        if len(values) < 2:
            continue
        ref = reference_level(factor, values, bases.get(factor))
        match = [f for f in levels if f != factor] + ["seed", "category"]
        for level in values:
            if level == ref:
                continue
            pairs, dropped = paired(rows, factor, ref, level, match)
            two = len(values) == 2
            name = factor if two else f"{factor}={fmt(level)}"
            effects.append(make_effect(name, _change(factor, ref, level), pairs, dropped))
    return effects


def interactions(rows: pd.DataFrame, levels: dict[str, list], bases: dict[str, Any]) -> list[Effect]:
    """Two-factor interactions of two-level factors: per matched cell (y11 - y10) - (y01 - y00), where 1 is a
    factor's non-reference level; positive = the first factor's effect is larger when the second is switched too."""
    binary = [f for f, v in levels.items() if len(v) == 2]
    effects = []
    for a, b in itertools.combinations(binary, 2):
        ref_a, ref_b = (reference_level(f, levels[f], bases.get(f)) for f in (a, b))
        on_a, on_b = (next(v for v in levels[f] if v != r) for f, r in ((a, ref_a), (b, ref_b)))
        match = [f for f in levels if f not in (a, b)] + ["seed", "category"]
        cells = rows.assign(_cell=[f"{int(x == on_a)}{int(y == on_b)}" for x, y in zip(rows[a], rows[b], strict=True)])
        wide = (
            cells.groupby([*match, "_cell"])["auc"].first().unstack("_cell").reindex(columns=["00", "01", "10", "11"])
        )
        ok = wide.notna().all(axis=1)
        dropped = int((~ok).sum())
        w = wide[ok]
        diffs = ((w["11"] - w["10"]) - (w["01"] - w["00"])).to_numpy(dtype=np.float64)
        mean, low, high, p, verdict, note = summarize(diffs)
        change = f"{a} effect with {b}={fmt(on_b)} minus with {b}={fmt(ref_b)}"
        effects.append(
            Effect(f"{a} x {b}", change, diffs, dropped, mean, low, high, p, verdict, note, interaction=True)
        )
    return effects


def loco_effects(rows: pd.DataFrame, removed: dict[str, tuple[str, Any]]) -> list[Effect]:
    """Leave-one-component-out: effect of component c = AUC(base) - AUC(c off), paired on seed and category.
    `removed`: variant name -> (factor, its off value)."""
    base = rows[rows["variant"] == "base"]
    effects = []
    for variant, (factor, off) in removed.items():
        both = pd.concat([base, rows[rows["variant"] == variant]])
        both = both.assign(_is_base=both["variant"] == "base")
        pairs, dropped = paired(both, "_is_base", False, True, ["seed", "category"])
        base_value = base[factor].iloc[0] if len(base) and factor in base else "base"
        effects.append(make_effect(factor, f"{fmt(off)} -> {fmt(base_value)} (base)", pairs, dropped))
    return effects


def _change(factor: str, ref: Any, level: Any) -> str:
    if factor in SWITCHES and (level, ref) == SWITCHES[factor]:
        return f"{fmt(ref)} -> {fmt(level)}" if factor != "attention" else "off -> on"
    return f"{fmt(ref)} -> {fmt(level)}"


def fmt(value: Any) -> str:
    """A factor value as the study file writes it."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)
