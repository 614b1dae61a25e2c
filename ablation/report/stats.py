"""Paired effects of switching a study factor: the mean AUC difference over matched runs and its verdict.

`judge` gives each effect its verdict (helps, hurts, negligible, undecided) from an interval corrected for the number
of effects and the looks (`sequential`). Each effect also carries a distribution-free check: a bootstrap interval
(scipy.stats.bootstrap) with a Wilcoxon signed-rank p-value (scipy.stats.wilcoxon) and its own three-way `verdict`.

A pair is two runs that differ in the switched factor only: same values of every other factor, same seed, same
category. Runs without a partner (a failed, stopped or missing cell) are dropped and counted, never imputed.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ssagan_core.presets import SWITCHES

from ..study.schema import AdaptiveSeeds, format_value
from ..study.schema import Analysis as AnalysisSettings
from .sequential import UNDECIDED, Decision, decide, verdicts
from .sequential import t_interval as t_interval_of

CONFIDENCE = 0.95
ALPHA = 0.05
RESAMPLES = 9999
EXHAUSTIVE_MAX = 13  # scipy.stats.wilcoxon enumerates every sign flip up to this many tied pairs
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
    q: float = math.nan  # p adjusted for the number of effects tested (Benjamini-Hochberg); see `adjust`
    pair_seeds: np.ndarray = field(default_factory=lambda: np.array([]))  # each pair's seed
    pair_categories: np.ndarray = field(default_factory=lambda: np.array([]))  # each pair's category
    decision: Decision | None = None  # the verdict from the corrected interval (`judge`); low/high are its interval
    by_category: dict[str, Decision] = field(default_factory=dict)  # the same interval over one category's pairs
    variants: tuple[str, ...] = ()  # the variants it compares (what adaptive seeds re-run while it is undecided)
    check: tuple[float, float] = (math.nan, math.nan)  # the bootstrap interval, kept here by `judge`

    @property
    def bootstrap(self) -> tuple[float, float]:
        """The distribution-free check's 95% bootstrap interval (low/high before `judge` replaces them)."""
        return self.check if self.decision else (self.low, self.high)

    @property
    def judged(self) -> str:
        """The verdict the report gives: the corrected interval's (`undecided` before `judge`)."""
        return self.decision.verdict if self.decision else UNDECIDED

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
        notes.append(
            "every pair tied: no test"
            if nonzero == 0
            else f"{nonzero} untied pairs: the signed-rank test cannot reach p < {ALPHA:g} with 5 or fewer"
        )
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


def adjust(effects: list[Effect]) -> list[Effect]:
    """Set each effect's q: its p adjusted by Benjamini-Hochberg over every effect with a p-value (a study that
    tests ten effects at 0.05 expects about one "helps" or "hurts" by chance; q < 0.05 keeps that rate at 5%)."""
    tested = [i for i, e in enumerate(effects) if math.isfinite(e.p)]
    if not tested:
        return effects
    q = stats.false_discovery_control([effects[i].p for i in tested], method="bh")
    out = list(effects)
    for i, value in zip(tested, q, strict=True):
        out[i] = replace(out[i], q=float(value))
    return out


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
    nonzero = d[d != 0]
    min_p = 2.0 / 2 ** len(nonzero) if len(nonzero) else 1.0
    if len(nonzero) == 0:
        return math.nan, min_p
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(nonzero) <= EXHAUSTIVE_MAX and len(np.unique(np.abs(nonzero))) < len(nonzero):
            # Tied |d| (common: AUCs on small test sets are coarse): scipy.stats.wilcoxon's own method here is every
            # sign flip, but it evaluates them one at a time, seconds per test. permutation_test with the signed-rank
            # statistic vectorised runs the same exhaustive test, the same p-value, in milliseconds.
            result = stats.permutation_test(
                (nonzero,), _w_plus, permutation_type="samples", vectorized=True, n_resamples=np.inf
            )
            return float(result.pvalue), min_p
        p = float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return p, min_p


def _w_plus(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The Wilcoxon signed-rank statistic: the sum of the ranks of |x| over the positive x."""
    return np.sum(stats.rankdata(np.abs(x), axis=axis) * (x > 0), axis=axis)


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
    seeds, categories = _pair_keys(pairs)
    keys = {"pair_seeds": seeds, "pair_categories": categories}
    return Effect(name, change, diffs, dropped, *summarize(diffs), cost_ratios(pairs), **keys)


def _pair_keys(pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's seed and category, from the index `paired` groups on."""
    names = pairs.index.names
    if "seed" not in names or pairs.empty:
        return np.array([]), np.array([])
    seeds = pairs.index.get_level_values("seed").to_numpy()
    categories = pairs.index.get_level_values("category").to_numpy() if "category" in names else np.array([])
    return seeds, categories


def judge(
    effects: list[Effect], settings: AnalysisSettings, adaptive: AdaptiveSeeds | None, seeds: list
) -> list[Effect]:
    """Every effect with its verdict from the corrected interval (module `sequential`): Bonferroni over the
    `len(effects)` effects, and with adaptive seeds the looks at `adaptive.looks()` seeds (of `seeds`, in the
    order the runner adds them). An effect's estimate, interval and pairs are those of the look that decided it;
    `by_category` repeats the interval per category at that look and confidence."""
    if not effects:
        return effects
    counts = adaptive.looks() if adaptive else [len(seeds)]
    share = settings.alpha / len(effects)
    rank = {s: i for i, s in enumerate(seeds)}
    out = []
    for e in effects:
        if e.n == 0 or len(e.pair_seeds) != e.n:
            out.append(e)
            continue
        decision = decide(e.diffs, e.pair_seeds, seeds, counts, share, settings.min_effect)
        cutoff = counts[decision.look - 1] if decision.look else len(seeds)
        keep = np.array([rank.get(s, len(seeds)) < cutoff for s in e.pair_seeds.tolist()], dtype=bool)
        if not keep.all():  # decided before the last seeds (run for other effects): those are not this effect's
            mean, low, high, p, verdict, note = summarize(e.diffs[keep])
            e = replace(
                e,
                low=low,
                high=high,
                diffs=e.diffs[keep],
                pair_seeds=e.pair_seeds[keep],
                mean=mean,
                p=p,
                verdict=verdict,
                note=note,
                pair_categories=e.pair_categories[keep] if len(e.pair_categories) else e.pair_categories,
            )
        categories = _by_category(e, decision.confidence, settings.min_effect)
        checked = {"check": (e.low, e.high), "by_category": categories}
        out.append(replace(e, decision=decision, low=decision.low, high=decision.high, **checked))
    return out


def _by_category(e: Effect, confidence: float, min_effect: float) -> dict[str, Decision]:
    if len(e.pair_categories) != e.n or len(set(e.pair_categories.tolist())) < 2:
        return {}
    out = {}
    for category in dict.fromkeys(e.pair_categories.tolist()):
        d = e.diffs[e.pair_categories == category]
        n = len(d)
        mean, sd = float(d.mean()), float(d.std(ddof=1)) if n > 1 else math.nan
        low, high = (float(v) for v in t_interval_of(mean, sd, n, confidence))
        verdict = str(verdicts(low, high, min_effect)) if n > 1 else UNDECIDED
        seeds = len(set(e.pair_seeds[e.pair_categories == category].tolist()))
        out[str(category)] = Decision(verdict, mean, low, high, confidence, seeds, 0, n)
    return out


def disagreement(e: Effect) -> list[tuple[str, str]]:
    """(category, verdict) of the categories decided in opposite directions, or [] when they do not disagree."""
    directed = {c: d.verdict for c, d in e.by_category.items() if d.verdict in ("helps", "hurts")}
    return sorted(directed.items()) if len(set(directed.values())) > 1 else []


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


def grid_effects(
    rows: pd.DataFrame, levels: dict[str, list], bases: dict[str, Any], metric: str = "auc"
) -> list[Effect]:
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
            pairs, dropped = paired(rows, factor, ref, level, match, metric)
            two = len(values) == 2
            name = factor if two else f"{factor}={format_value(level)}"
            compared = tuple(rows.loc[rows[factor].isin([ref, level]), "variant"].unique())
            effects.append(replace(make_effect(name, _change(factor, ref, level), pairs, dropped), variants=compared))
    return effects


def interactions(
    rows: pd.DataFrame, levels: dict[str, list], bases: dict[str, Any], metric: str = "auc"
) -> list[Effect]:
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
            cells.groupby([*match, "_cell"])[metric].first().unstack("_cell").reindex(columns=["00", "01", "10", "11"])
        )
        ok = wide.notna().all(axis=1)
        dropped = int((~ok).sum())
        w = wide[ok]
        diffs = ((w["11"] - w["10"]) - (w["01"] - w["00"])).to_numpy(dtype=np.float64)
        mean, low, high, p, verdict, note = summarize(diffs)
        change = f"{a} effect with {b}={format_value(on_b)} minus with {b}={format_value(ref_b)}"
        seeds, categories = _pair_keys(w)
        keys = {"interaction": True, "pair_seeds": seeds, "pair_categories": categories}
        effects.append(Effect(f"{a} x {b}", change, diffs, dropped, mean, low, high, p, verdict, note, **keys))
    return effects


def loco_effects(rows: pd.DataFrame, removed: dict[str, tuple[str, Any]], metric: str = "auc") -> list[Effect]:
    """Leave-one-component-out: effect of component c = AUC(base) - AUC(c off), paired on seed and category.
    `removed`: variant name -> (factor, its off value)."""
    base = rows[rows["variant"] == "base"]
    effects = []
    for variant, (factor, off) in removed.items():
        both = pd.concat([base, rows[rows["variant"] == variant]])
        both = both.assign(_is_base=both["variant"] == "base")
        pairs, dropped = paired(both, "_is_base", False, True, ["seed", "category"], metric)
        base_value = base[factor].iloc[0] if len(base) and factor in base else None
        change = _change(factor, off, base_value) if base_value is not None else f"{format_value(off)} -> base"
        effects.append(replace(make_effect(factor, change, pairs, dropped), variants=("base", variant)))
    return effects


def _change(factor: str, ref: Any, level: Any) -> str:
    if factor == "attention" and isinstance(ref, (bool, np.bool_)) and isinstance(level, (bool, np.bool_)):
        return f"{'on' if ref else 'off'} -> {'on' if level else 'off'}"
    return f"{format_value(ref)} -> {format_value(level)}"
