"""Verdicts that decide: each effect's interval, corrected for the number of effects and for repeated looks, read
against the smallest effect that matters (`analysis.min_effect`), as one of four verdicts.

The rule, for a study that tests `m` effects at family error `alpha`:
- At a look with `n` seeds of an effect's variants, the interval is the paired t-interval of the mean difference
  (Student's t quantile: scipy.special.stdtrit) at confidence `1 - a_k / m`, `a_k` the share of `alpha` spent at
  this look.
- Fixed seeds (`seeds: [0, 1, 2]`): one look, `a_1 = alpha` (a Bonferroni interval).
- Adaptive seeds (`seeds: {initial, max, step}`): looks at `initial`, `initial + step`, ... up to `max` seeds, with
  `a_k = A(t_k) - A(t_{k-1})`, `t_k` = seeds / max seeds, and `A(t) = alpha * ln(1 + (e - 1) t)`, the Pocock-type
  spending function of Lan & DeMets (1983, Biometrika 70(3), "Discrete sequential boundaries for clinical
  trials"). The shares add up to at most `alpha` whatever the looks turn out to be, so by the union bound the
  chance that an effect's interval misses its true value at ANY look is at most `alpha / m`, and the chance that
  any of the `m` effects gets a wrong verdict is at most `alpha`. This is conservative (it ignores that the looks
  are correlated) and needs no model of the stopping rule, which is why it can stop each effect on its own.
- Verdict from the interval [low, high]: *negligible* when it lies inside (-min_effect, +min_effect) (an
  equivalence result: two one-sided tests at `a_k / (2 m)` each); else *helps* when low > 0, *hurts* when
  high < 0; else *undecided*. Once an effect is decided it stays decided: later seeds (run for other effects) are
  not used for it.
A wrong verdict needs the interval to miss the true effect (a false *helps* under no effect needs low > 0; a false
*negligible* under a true effect beyond +-min_effect needs the interval to end short of it), so each kind of error is
bounded by the same `alpha`; tests/test_sequential.py checks it by simulation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special

HELPS, HURTS, NEGLIGIBLE, UNDECIDED = "helps", "hurts", "negligible", "undecided"
DECIDED = (HELPS, HURTS, NEGLIGIBLE)


def spent(alpha: float, fraction: float) -> float:
    """The share of `alpha` spent by information fraction `fraction` (Lan-DeMets Pocock-type spending)."""
    fraction = min(max(fraction, 0.0), 1.0)
    return alpha * math.log(1 + (math.e - 1) * fraction)


def look_alphas(counts: list[int], maximum: int, alpha: float) -> list[float]:
    """The share of `alpha` each look may spend: A(t_k) - A(t_(k-1)), t = seeds / maximum."""
    fractions = [0.0] + [c / maximum for c in counts]
    return [spent(alpha, b) - spent(alpha, a) for a, b in itertools.pairwise(fractions)]


def t_interval(mean, sd, n, confidence) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided t-interval of a mean from (mean, sample sd, n); vectorised. n < 2 gives (nan, nan); sd = 0 gives
    [mean, mean] (every pair moved by the same amount: no sampling spread to allow for)."""
    mean, sd, n = (np.asarray(v, dtype=np.float64) for v in (mean, sd, n))
    confidence = np.asarray(confidence, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where(n >= 2, n - 1, np.nan)
        half = special.stdtrit(df, 0.5 + confidence / 2) * sd / np.sqrt(n)  # the t quantile, as scipy.stats.t.ppf
    half = np.where(sd == 0, 0.0, half)
    half = np.where(n >= 2, half, np.nan)
    return mean - half, mean + half


def verdicts(low, high, min_effect: float) -> np.ndarray:
    """The verdict of each interval; vectorised."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return np.select(
        [(low > -min_effect) & (high < min_effect), low > 0, high < 0],
        [NEGLIGIBLE, HELPS, HURTS],
        UNDECIDED,
    ).astype(object)


@dataclass(frozen=True)
class Decision:
    """An effect's verdict and the look it came from."""

    verdict: str  # helps | hurts | negligible | undecided
    mean: float  # the estimate at that look
    low: float
    high: float
    confidence: float  # of the interval: 1 - a_k / m
    seeds: int  # seeds at that look
    look: int  # 1-based; the look that decided it, or the last one made
    n: int  # pairs at that look

    @property
    def decided(self) -> bool:
        return self.verdict in DECIDED


def decide(
    diffs: np.ndarray,
    pair_seeds: np.ndarray,
    seed_order: list,
    counts: list[int],
    alpha_share: float,
    min_effect: float,
) -> Decision:
    """Replay the looks over one effect's paired differences: at look k, the pairs whose seed is among the first
    `counts[k]` of `seed_order`. A look is made only when the runner gave the effect seeds beyond the previous look
    (a budget stop ends the looks); the first decided look is the verdict. `alpha_share`: alpha / m."""
    diffs, pair_seeds = np.asarray(diffs, dtype=np.float64), np.asarray(pair_seeds)
    rank = {s: i for i, s in enumerate(seed_order)}
    position = np.array([rank.get(s, len(seed_order)) for s in pair_seeds.tolist()], dtype=np.int64)
    maximum = counts[-1]
    shares = look_alphas(counts, maximum, alpha_share)
    decision = Decision(UNDECIDED, math.nan, math.nan, math.nan, math.nan, 0, 0, 0)
    previous = 0
    for k, (count, share) in enumerate(zip(counts, shares, strict=True), 1):
        inside = position < count
        new = (position >= previous) & inside
        if k > 1 and not new.any():
            break
        d = diffs[inside]
        n = len(d)
        mean = float(d.mean()) if n else math.nan
        sd = float(d.std(ddof=1)) if n >= 2 else math.nan
        confidence = 1 - share
        low, high = (float(v) for v in t_interval(mean, sd, n, confidence))
        verdict = str(verdicts(low, high, min_effect)) if n >= 2 else UNDECIDED
        seeds_seen = len({s for s, inside_ in zip(pair_seeds.tolist(), inside, strict=True) if inside_})
        decision = Decision(verdict, mean, low, high, confidence, seeds_seen, k, n)
        if decision.decided:
            break
        previous = count
    return decision
