"""`--dry-run`'s cost estimate: a real probe of each variant, trials laid out on the study's slots, the harness's
time added, FLOPs counted; `--no-estimate` skips it; a GPU study on a machine without one says so."""

from __future__ import annotations

import re

import pytest

from ablation.run import estimate as est
from ablation.run.cli import main
from ablation.study.load import load_study
from ablation.study.schema import Resources

from .studies import write_study


def test_trials_are_laid_out_in_order_on_the_slots() -> None:
    start, end, per = est.START_SECONDS, est.REPORT_SECONDS, est.PER_TRIAL_SECONDS
    assert est._wall([10.0, 10.0, 10.0, 10.0], 2) == pytest.approx(start + 2 * (10 + per) + end)
    assert est._wall([40.0, 10.0, 10.0, 10.0], 2) == pytest.approx(start + 40 + per + end)  # 3 short ones beside it
    assert est._wall([5.0] * 3, 1) == pytest.approx(start + 3 * (5 + per) + end)


def test_concurrency_is_the_study_cap_within_what_fits() -> None:
    assert est.concurrency(Resources(cpus_per_trial=1), cpus=2) == 2
    assert est.concurrency(Resources(cpus_per_trial=1, max_concurrent=1), cpus=2) == 1
    assert est.concurrency(Resources(cpus_per_trial=1, max_concurrent=8), cpus=2) == 2
    assert est.concurrency(Resources(cpus_per_trial=4), cpus=2) == 1
    assert est.concurrency(Resources(cpus_per_trial=1, gpus_per_trial=0.25), cpus=16, gpus=1) == 4


def test_dry_run_probes_each_variant_and_estimates_the_study(tmp_path, capsys) -> None:
    path = write_study(tmp_path / "s.yaml", train__eval_every=2)
    assert main([str(path), "--dry-run", "--out", str(tmp_path / "out"), "--num-cpus", "1"]) == 0
    out, err = capsys.readouterr()
    table = out[out.index("cost estimate") :]  # after the plan's table
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if line.startswith("│ attention=")}
    assert set(rows) == {"attention=true", "attention=false"}
    for line in rows.values():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        assert float(cells[2]) > 0 and float(cells[4]) > 0 and float(cells[5]) > 0  # s/iter, GFLOP G and D
        assert float(cells[6]) == pytest.approx(3 * float(cells[4]) + 6 * float(cells[5]), rel=0.02)
    wall = re.search(r"estimated wall time: (.+) for 4 trials \((.+) of trial work, 1 at a time here", err)
    assert wall, err
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_the_estimate_adds_up_from_the_probe(tmp_path) -> None:
    """Every trial's estimate: iterations x the probe's seconds per iteration + its time outside the loop + the
    validation scorings of the eval points; the study's trial work is their sum."""
    study = load_study(write_study(tmp_path / "s.yaml", train__eval_every=2, train__iterations=6))
    from ablation.study.design import trial_specs
    from ablation.study.load import data_config
    from ssagan_core.data import load_category

    specs = trial_specs(study, ("nut",))
    data = {"nut": load_category(data_config(study), "nut")}
    result = est.estimate(specs, data, "cpu", 1, 2)
    assert [v.variant for v in result.variants] == ["attention=true", "attention=false"]
    assert all(v.trials == 2 and v.seconds_per_iteration > 0 and v.other_seconds > 0 for v in result.variants)
    for v in result.variants:
        assert v.trial_seconds > 6 * v.seconds_per_iteration + v.other_seconds  # plus two validation scorings
    assert result.trial_seconds == pytest.approx(sum(v.trial_seconds * v.trials for v in result.variants))
    assert result.wall_seconds >= result.trial_seconds / 2 + est.START_SECONDS + est.REPORT_SECONDS
    assert result.worst_case_seconds(8) > result.wall_seconds


def test_no_estimate_skips_the_probe_and_a_gpu_study_without_a_gpu_says_so(tmp_path, capsys) -> None:
    path = write_study(tmp_path / "s.yaml")
    assert main([str(path), "--dry-run", "--no-estimate", "--out", str(tmp_path / "out")]) == 0
    assert "estimated wall time" not in capsys.readouterr().err
    gpu = write_study(tmp_path / "g.yaml", resources={"cpus_per_trial": 1, "gpus_per_trial": 0.5})
    assert main([str(gpu), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "cost estimate: not made: the study asks for GPUs" in err and "estimated wall time" not in err


def test_longest_first_orders_by_counted_work_and_keeps_ties_in_order() -> None:
    from ablation.run.estimate import longest_first
    from ablation.study.design import trial_specs
    from ablation.study.load import data_config, parse_study
    from ssagan_core.data import load_category

    from .studies import TINY_STUDY

    study = parse_study({**TINY_STUDY, "grid": {"model.attention": [False, True], "train.iterations": [2, 4]}})
    specs = trial_specs(study, ("nut",))
    data = {"nut": load_category(data_config(study), "nut")}
    order = [(s.factors["model.attention"], s.factors["train.iterations"], s.seed) for s in longest_first(specs, data)]
    assert order == [(True, 4, 0), (True, 4, 1), (True, 2, 0), (True, 2, 1),
                     (False, 4, 0), (False, 4, 1), (False, 2, 0), (False, 2, 1)]  # fmt: skip
