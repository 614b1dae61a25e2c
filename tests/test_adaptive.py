"""Adaptive seeds: the study keys, the refusals, and which trials each round runs (`ablation.run.adaptive`), from
hand-built ledgers with known effects; then a real run (slow) whose rounds must match what its report decides."""

from __future__ import annotations

import pandas as pd
import pytest

from ablation.results.ledger import load_results
from ablation.run.adaptive import next_round, worst_case
from ablation.run.cli import main
from ablation.study.load import StudyError, check_budget, parse_study
from ablation.study.schema import Study

from .test_report import base_auc, grid_rows, grid_study, row

CATEGORIES = ("nut", "wood")
ADAPTIVE = {"initial": 3, "max": 7, "step": 2}


def study_of(design: dict, seeds=None, **sections) -> Study:
    raw = {**grid_study(design, categories=CATEGORIES), **sections}
    del raw["seeds"]
    raw["adaptive_seeds"] = dict(seeds or ADAPTIVE)
    return parse_study(raw)


def loco_rows(deltas: dict[str, callable], seeds) -> list[dict]:
    """base + each component off; `deltas[factor](seed, category)`: AUC of base minus AUC with it off."""
    offs = {"attention": False, "conv": "standard"}
    rows = []
    for seed in seeds:
        for category in CATEGORIES:
            rows.append(row("base", seed, category, base_auc(seed, category), design="loco"))
            for factor, delta in deltas.items():
                value = base_auc(seed, category) - delta(seed, category)
                name = f"{factor}={'false' if offs[factor] is False else offs[factor]}"
                rows.append(row(name, seed, category, value, design="loco", **{factor: offs[factor]}))
    return rows


LOCO = {"loco": {"model.attention": False, "model.conv": "standard"}}


def keys(specs) -> set[str]:
    return {s.key for s in specs}


# --- the study file ---------------------------------------------------------------------------------------------


def test_adaptive_seeds_are_read_saved_and_read_back():
    study = study_of({"grid": {"model.attention": [True, False]}}, analysis={"min_effect": 0.01, "alpha": 0.1})
    assert study.adaptive_seeds.looks() == [3, 5, 7]
    assert study.seeds == tuple(range(7)) and study.first_seeds == (0, 1, 2)
    assert study.analysis.min_effect == 0.01 and study.analysis.alpha == 0.1
    again = Study.from_dict(study.to_dict())
    assert again == study
    assert worst_case(study, 2) == 2 * 7 * 2


@pytest.mark.parametrize(
    "change, key",
    [
        ({"adaptive_seeds": {"initial": 4, "max": 3, "step": 1}}, "adaptive_seeds.max"),
        ({"adaptive_seeds": {"initial": 3, "max": 6, "step": 0}}, "adaptive_seeds.step"),
        ({"adaptive_seeds": {"initial": 1, "max": 6, "step": 1}}, "adaptive_seeds.initial"),
        ({"adaptive_seeds": {"initial": 3, "max": 6, "steps": 2}}, "adaptive_seeds.steps"),
        ({"adaptive_seeds": {"initial": 3, "max": 6, "step": 1, "max_hours": 0}}, "adaptive_seeds.max_hours"),
        ({"adaptive_seeds": {"initial": 3, "max": 6, "step": 1, "max_trials": 0}}, "adaptive_seeds.max_trials"),
        ({"adaptive_seeds": [3, 6, 1]}, "adaptive_seeds"),
        ({"analysis": {"min_effect": 0}}, "analysis.min_effect"),
        ({"analysis": {"min_effect": -0.01}}, "analysis.min_effect"),
        ({"analysis": {"alpha": 0.5}}, "analysis.alpha"),
        ({"analysis": {"alpha": 0}}, "analysis.alpha"),
        ({"analysis": {"beta": 0.2}}, "analysis.beta"),
        ({"analysis": [0.01]}, "analysis"),
    ],
)
def test_contradictory_analysis_settings_are_refused_naming_the_key(change, key):
    raw = {**grid_study({"grid": {"model.attention": [True, False]}}), **change}
    if "adaptive_seeds" in change:
        del raw["seeds"]
    with pytest.raises(StudyError) as e:
        parse_study(raw)
    assert str(e.value).startswith(f"{key}:") and "\n" not in str(e.value)


def test_a_budget_that_cannot_fit_one_round_is_refused():
    study = study_of({"grid": {"model.attention": [True, False]}}, seeds={**ADAPTIVE, "max_trials": 11})
    with pytest.raises(StudyError, match=r"^adaptive_seeds.max_trials: 11 cannot fit the first round .* = 12 trials"):
        check_budget(study, len(CATEGORIES))
    check_budget(study_of({"grid": {"model.attention": [True, False]}}, seeds={**ADAPTIVE, "max_trials": 12}), 2)


def test_adaptive_seeds_are_refused_for_a_search():
    raw = grid_study({"search": {"space": {"train.lr": {"log_uniform": [1e-4, 1e-3]}}}})
    del raw["seeds"]
    raw["adaptive_seeds"] = ADAPTIVE
    with pytest.raises(StudyError, match=r"^adaptive_seeds: for grid and loco studies"):
        parse_study(raw)


def test_seeds_and_adaptive_seeds_together_are_refused():
    raw = {**grid_study({"grid": {"model.attention": [True, False]}}), "adaptive_seeds": ADAPTIVE}
    with pytest.raises(StudyError, match=r"^adaptive_seeds: give either seeds"):
        parse_study(raw)


def test_the_cli_refuses_a_bad_budget_before_any_trial(tmp_path, capsys):
    import yaml

    raw = grid_study({"grid": {"model.attention": [True, False]}})
    del raw["seeds"]
    raw["adaptive_seeds"] = {**ADAPTIVE, "max_trials": 5}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "adaptive_seeds.max_trials: 5 cannot fit the first round" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


# --- rounds -----------------------------------------------------------------------------------------------------


def test_the_first_round_is_every_variant_at_the_initial_seeds():
    study = study_of({"grid": {"model.attention": [True, False]}})
    plan = next_round(study, CATEGORIES, pd.DataFrame(), set())
    assert {(s.seed, s.category) for s in plan.specs} == {(s, c) for s in (0, 1, 2) for c in CATEGORIES}
    assert len(plan.specs) == 12


def test_a_clear_effect_stops_after_the_first_round():
    study = study_of({"grid": {"model.attention": [True, False]}})
    rows = grid_rows(lambda f, s, c: base_auc(s, c) + 0.1 * f["attention"], {"attention": [True, False]})
    plan = next_round(study, CATEGORIES, pd.DataFrame(rows), set())
    assert plan.specs == [] and "every effect decided" in plan.why


def test_an_undecided_effect_gets_the_next_seeds_for_its_variants_only():
    """LOCO: attention clearly helps (decided); conv moves AUC by noise (undecided): the next round runs seeds 3-4
    of the base and of conv=standard only."""
    study = study_of(LOCO)
    noise = {(s, c): (0.06 if (s + (c == "wood")) % 2 else -0.05) for s in range(7) for c in CATEGORIES}
    deltas = {"attention": lambda s, c: 0.10 + 0.001 * s, "conv": lambda s, c: noise[(s, c)]}
    rows = pd.DataFrame(loco_rows(deltas, seeds=range(3)))
    plan = next_round(study, CATEGORIES, rows, set())
    assert {(s.variant, s.seed) for s in plan.specs} == {
        (v, seed) for v in ("base", "conv=standard") for seed in (3, 4)
    }
    assert "conv undecided" in plan.why
    # after that round, conv is still undecided: seeds 5-6; attention=false is never run again
    more = pd.concat([rows, pd.DataFrame(loco_rows(deltas, seeds=range(3, 5)))])
    more = more[~((more["variant"] == "attention=false") & (more["seed"] >= 3))]
    plan = next_round(study, CATEGORIES, more, set())
    assert {(s.variant, s.seed) for s in plan.specs} == {
        (v, seed) for v in ("base", "conv=standard") for seed in (5, 6)
    }
    # at seeds.max the study stops, however the effect stands
    full = pd.concat([more, pd.DataFrame(loco_rows(deltas, seeds=range(5, 7)))])
    full = full[~((full["variant"] == "attention=false") & (full["seed"] >= 3))]
    plan = next_round(study, CATEGORIES, full, set())
    assert plan.specs == [] and "adaptive_seeds.max (7)" in plan.why


def test_an_unfinished_round_is_finished_before_anything_is_judged():
    study = study_of(LOCO)
    deltas = {"attention": lambda s, c: 0.10, "conv": lambda s, c: 0.0}
    rows = pd.DataFrame(loco_rows(deltas, seeds=range(3)))
    rows = rows[rows["trial_key"] != "conv=standard|seed=2|wood"]  # interrupted before this trial
    plan = next_round(study, CATEGORIES, rows, set())
    assert keys(plan.specs) == {"conv=standard|seed=2|wood"}
    # tried once in this invocation and failed: not retried in a loop (a --resume retries it)
    failed = pd.concat([rows, pd.DataFrame([row("conv=standard", 2, "wood", float("nan"), status="failed")])])
    plan = next_round(study, CATEGORIES, failed, {"conv=standard|seed=2|wood"})
    assert "conv=standard|seed=2|wood" not in keys(plan.specs)
    assert "conv=standard|seed=2|wood" in keys(next_round(study, CATEGORIES, failed, set()).specs)


def test_the_trial_budget_stops_a_round_that_would_not_fit():
    study = study_of(LOCO, seeds={**ADAPTIVE, "max_trials": 20})
    noise = {(s, c): (0.06 if (s + (c == "wood")) % 2 else -0.05) for s in range(7) for c in CATEGORIES}
    rows = pd.DataFrame(loco_rows({"attention": lambda s, c: noise[(s, c)], "conv": lambda s, c: 0.0}, range(3)))
    plan = next_round(study, CATEGORIES, rows, set())  # 18 recorded + 8 more > 20
    assert plan.specs == [] and plan.why.startswith("adaptive_seeds.max_trials:")


# --- a real run ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_adaptive_run_runs_the_rounds_its_report_decides(tmp_path):
    """Real training (tiny, serial), with a factor whose effect varies by seed and a tiny min_effect so that the
    first look cannot decide it: each variant ran exactly the seeds of the look its effect ended at, the report
    names the look, and a --resume of the finished study runs nothing."""
    import yaml

    from ablation.report.analysis import analyse

    raw = {
        "name": "adaptive_tiny",
        "dataset": {"kind": "synthetic", "categories": ["nut", "capsule"], "image_size": 16},
        "model": {"model": "ssagan", "base_channels": 4, "max_channels": 8, "ndf": 4, "depth": 3},
        "train": {"iterations": 20, "batch_size": 4},
        "adaptive_seeds": {"initial": 2, "max": 4, "step": 2},
        "analysis": {"min_effect": 0.001},
        "grid": {"train.lr": [0.0002, 0.005]},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out), "--serial"]) == 0
    results = load_results(out)
    (effect,) = analyse(results).effects
    looks = [2, 4]
    ended_at = looks[effect.decision.look - 1]
    assert results.trials.groupby("variant")["seed"].nunique().to_dict() == dict.fromkeys(effect.variants, ended_at)
    assert effect.decision.seeds == ended_at and effect.n == 2 * ended_at
    assert len(results.trials) == 2 * 2 * ended_at
    assert f"look {effect.decision.look} of 2" in (out / "report.md").read_text()
    assert main([str(path), "--out", str(out), "--serial", "--resume"]) == 0
    assert len(load_results(out).trials) == len(results.trials)


@pytest.mark.slow
def test_the_time_budget_stops_before_a_new_round(tmp_path, capsys):
    import yaml

    raw = {
        "name": "adaptive_hours",
        "dataset": {"kind": "synthetic", "categories": ["nut"], "image_size": 16},
        "model": {"model": "ssagan", "base_channels": 4, "max_channels": 8, "ndf": 4, "depth": 3},
        "train": {"iterations": 20, "batch_size": 4},
        "adaptive_seeds": {"initial": 2, "max": 6, "step": 2, "max_hours": 1e-6},
        "analysis": {"min_effect": 0.0001},
        "grid": {"train.lr": [0.0002, 0.005]},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main([str(path), "--out", str(tmp_path / "out"), "--serial", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "adaptive seeds: round 1: the first seeds" in err
    assert "adaptive seeds: stopped: adaptive_seeds.max_hours (1e-06 h) spent; --resume continues" in err
    assert len(load_results(tmp_path / "out").trials) == 4
