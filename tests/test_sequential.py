"""The verdict rule (ablation.report.sequential) proven by simulation, with no training: paired differences drawn
under no effect, a negligible effect and a real effect go through the same `decide` the report and the runner use,
with the adaptive looks of `seeds: {initial: 3, max: 12, step: 2}` over two categories, and each kind of wrong
verdict must stay at or below alpha.

`python -m tests.test_sequential` prints the table the closing note of issue 9 reports (more studies per cell).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from ablation.report.sequential import HELPS, HURTS, NEGLIGIBLE, UNDECIDED, decide, look_alphas, spent, t_interval
from ablation.study.schema import AdaptiveSeeds

ALPHA, MIN_EFFECT, SD = 0.05, 0.02, 0.03  # sd of one paired AUC difference: what the shipped studies show
PLAN = AdaptiveSeeds(initial=3, max=12, step=2)
CATEGORIES = 2
SCENARIOS = {  # name -> true effect
    "null": 0.0,
    "negligible": 0.5 * MIN_EFFECT,
    "at the margin": MIN_EFFECT,
    "real": 2.5 * MIN_EFFECT,
}


def simulate(effect: float, studies: int, effects_per_study: int = 1, seed: int = 0, tails: str = "normal") -> dict:
    """Run `studies` simulated studies of `effects_per_study` effects with true value `effect`; per verdict, the
    share of effects that got it; `family_wrong`: the share of studies with at least one wrong verdict; `seeds`: the
    mean seeds an effect needed."""
    rng = np.random.default_rng(seed)
    order = list(range(PLAN.max))
    pair_seeds = np.repeat(order, CATEGORIES)
    counts = {v: 0 for v in (HELPS, HURTS, NEGLIGIBLE, UNDECIDED)}
    family_wrong, seeds = 0, []
    for _ in range(studies):
        wrong = False
        for _ in range(effects_per_study):
            if tails == "normal":
                noise = rng.normal(0, SD, len(pair_seeds))
            else:  # heavy tails: Student t with 3 degrees of freedom, scaled to the same sd
                noise = rng.standard_t(3, len(pair_seeds)) * SD / math.sqrt(3)
            d = decide(effect + noise, pair_seeds, order, PLAN.looks(), ALPHA / effects_per_study, MIN_EFFECT)
            counts[d.verdict] += 1
            seeds.append(d.seeds)
            wrong |= is_wrong(d.verdict, effect)
        family_wrong += wrong
    total = studies * effects_per_study
    rates = {k: v / total for k, v in counts.items()}
    return {**rates, "family_wrong": family_wrong / studies, "seeds": float(np.mean(seeds))}


def is_wrong(verdict: str, effect: float) -> bool:
    """A verdict the true effect contradicts: a direction it does not have, or negligible when it matters."""
    if verdict == HELPS:
        return effect <= 0
    if verdict == HURTS:
        return effect >= 0
    if verdict == NEGLIGIBLE:
        return abs(effect) >= MIN_EFFECT
    return False


def test_no_effect_is_called_helps_or_hurts_at_most_alpha_of_the_time():
    rates = simulate(SCENARIOS["null"], 1500)
    assert rates[HELPS] + rates[HURTS] <= ALPHA
    assert rates["family_wrong"] <= ALPHA
    # and the rule does decide: at this noise some null effects are already shown negligible within 12 seeds
    assert rates[NEGLIGIBLE] > 0.1


def test_a_real_effect_is_called_negligible_at_most_alpha_of_the_time():
    for name in ("at the margin", "real"):
        rates = simulate(SCENARIOS[name], 1500, seed=1)
        assert rates[NEGLIGIBLE] <= ALPHA, name
        assert rates[HURTS] <= ALPHA, name
    assert simulate(SCENARIOS["real"], 500, seed=2)[HELPS] > 0.8  # and it is found


def test_a_negligible_effect_is_rarely_called_hurts():
    rates = simulate(SCENARIOS["negligible"], 1500, seed=3)
    assert rates[HURTS] <= ALPHA
    assert rates[NEGLIGIBLE] > 0.03


def test_many_effects_keep_the_family_error_at_alpha():
    """Five null effects per study: the chance that any of them is called helps or hurts stays <= alpha."""
    assert simulate(SCENARIOS["null"], 800, effects_per_study=5, seed=4)["family_wrong"] <= ALPHA


def test_alpha_is_spent_over_the_looks_and_never_more():
    shares = look_alphas(PLAN.looks(), PLAN.max, ALPHA)
    assert PLAN.looks() == [3, 5, 7, 9, 11, 12]
    assert all(s > 0 for s in shares) and sum(shares) == pytest.approx(ALPHA)
    assert spent(ALPHA, 1.0) == pytest.approx(ALPHA) and spent(ALPHA, 0) == 0
    # a budget stop after three looks has spent less than alpha
    assert sum(look_alphas([3, 5, 7], PLAN.max, ALPHA)) < ALPHA


def test_decide_uses_only_the_seeds_up_to_the_deciding_look():
    """Decided at the first look (3 seeds): later seeds, run for another effect, do not change the verdict."""
    order = list(range(12))
    pair_seeds = np.repeat(order, 2)
    d = np.where(pair_seeds < 3, 0.10, -0.50)  # the later seeds would reverse it
    decision = decide(d, pair_seeds, order, PLAN.looks(), ALPHA, MIN_EFFECT)
    assert decision.verdict == HELPS and decision.look == 1 and decision.seeds == 3 and decision.n == 6
    # the runner stopped after the first round: no second look is made
    first_round = pair_seeds < 3
    noisy = np.array([0.1, -0.1, 0.05, 0.0, -0.05, 0.02])
    decision = decide(noisy, pair_seeds[first_round], order, PLAN.looks(), ALPHA, MIN_EFFECT)
    assert decision.verdict == UNDECIDED and decision.look == 1


def test_t_interval_matches_scipy():
    from scipy import stats

    d = np.array([0.01, 0.03, -0.02, 0.05, 0.04])
    low, high = t_interval(d.mean(), d.std(ddof=1), len(d), 0.99)
    expected = stats.ttest_1samp(d, 0).confidence_interval(0.99)
    assert (low, high) == pytest.approx((expected.low, expected.high))


def main() -> None:
    studies = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"alpha {ALPHA}, min_effect {MIN_EFFECT}, pair sd {SD}, seeds {PLAN.looks()}, {CATEGORIES} categories")
    print("| true effect | tails | effects/study | helps | hurts | negligible | undecided | wrong (family) | seeds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tails in ("normal", "t3"):
        for name, effect in SCENARIOS.items():
            for m in (1, 5):
                r = simulate(effect, studies // m, m, seed=11, tails=tails)
                rates = " | ".join(f"{r[k]:.3f}" for k in (HELPS, HURTS, NEGLIGIBLE, UNDECIDED, "family_wrong"))
                print(f"| {name} ({effect:+.3f}) | {tails} | {m} | {rates} | {r['seeds']:.1f} |")


if __name__ == "__main__":
    main()
