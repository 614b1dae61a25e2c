"""Adaptive seeds (`adaptive_seeds: {initial, max, step}`): which trials the next round runs.

A round is a set of trials; after each, every main effect is judged from the ledger exactly as the report judges it
(`report.stats.judge`, replaying the looks). An undecided effect whose seeds have not reached `max` gets its next
look: `step` more seeds for every variant it compares (so its pairs stay complete). The study stops when every
effect is decided or out of seeds, or when the trial or time budget cannot take another round. Everything is read
back from the ledger, so `--resume` continues where a run stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..report.analysis import prepare, study_effects
from ..report.factors import describe_design
from ..report.sequential import DECIDED
from ..report.stats import Effect
from ..results.rows import OK
from ..study.design import TrialSpec, trial_specs
from ..study.schema import Study


@dataclass(frozen=True)
class Round:
    """The next round's trials, or none and why the study stops."""

    specs: list[TrialSpec]
    why: str  # what the round is for, or why there is none


def next_round(study: Study, categories: tuple[str, ...], trials: pd.DataFrame, attempted: set[str]) -> Round:
    """The trials to run next. `trials`: the ledger; `attempted`: keys already run in this invocation (a failed trial
    is retried once per `--resume`, not in a loop)."""
    r = study.adaptive_seeds
    looks = r.looks()
    every = trial_specs(study, categories)
    position = {s: i for i, s in enumerate(study.seeds)}
    ok = set(trials.loc[trials["status"] == OK, "trial_key"]) if len(trials) else set()
    recorded = set(trials["trial_key"]) if len(trials) else set()

    # Seeds each variant is due: the initial ones, or as far as a round already reached (an interrupted round is
    # finished before anything is judged).
    due = {s.variant: r.initial for s in every}
    for s in every:
        if s.key in recorded:
            reached = position[s.seed] + 1
            due[s.variant] = max(due[s.variant], next(c for c in looks if c >= reached))
    pending = _missing(every, due, position, ok, attempted)
    if pending:
        return Round(pending, "the first seeds" if not recorded else "the rest of an unfinished round")

    effects = judged(study, trials)
    growing = []
    for e in effects:
        d = e.decision
        if d is None or d.verdict in DECIDED or d.look >= len(looks):
            continue
        growing.append(e.name)
        for variant in e.variants:
            due[variant] = max(due[variant], looks[d.look])
    if not growing:
        decided = sum(1 for e in effects if e.decision and e.decision.verdict in DECIDED)
        if decided == len(effects):
            return Round([], f"every effect decided ({decided})")
        return Round(
            [], f"{decided} of {len(effects)} effects decided; the others reached adaptive_seeds.max ({r.max})"
        )
    todo = _missing(every, due, position, ok, attempted)
    if not todo:
        return Round([], f"no trial left to run for {', '.join(growing)} (failed trials: --resume retries them)")
    if r.max_trials is not None and len(recorded) + len(todo) > r.max_trials:
        return Round(
            [],
            f"adaptive_seeds.max_trials: the next round ({len(todo)} trials for {', '.join(growing)}) would pass "
            f"{r.max_trials} trials",
        )
    return Round(todo, f"{', '.join(growing)} undecided: {len(todo)} more trials")


def judged(study: Study, trials: pd.DataFrame) -> list[Effect]:
    """The study's main effects with their verdicts, from the ledger (what the report will say)."""
    if not len(trials):
        return []
    rows = prepare(trials)
    return study_effects(study, rows, describe_design(study, rows), study.analysis)[0]


def worst_case(study: Study, n_categories: int) -> int:
    """The most trials the study can run: every variant at `adaptive_seeds.max` (or `max_trials`, if smaller)."""
    most = study.planned_trials(n_categories)
    return min(most, study.adaptive_seeds.max_trials) if study.adaptive_seeds.max_trials else most


def _missing(every: list[TrialSpec], due: dict, position: dict, ok: set, attempted: set) -> list[TrialSpec]:
    return [s for s in every if position[s.seed] < due[s.variant] and s.key not in ok and s.key not in attempted]
