"""Trial faults injected inside real trials on real Ray (`ablation/run/faults.py`): each is retried as configured,
then recorded as a failed row with a one-line reason, and the study goes on; the report counts them by reason."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ablation.report.cli import render_report
from ablation.results.ledger import SCORES_FILE, TRIALS_FILE
from ablation.run.cli import main
from ablation.run.faults import FAULTS_ENV
from ssagan_core.metrics import auc_or_nan

from .studies import write_study

pytestmark = pytest.mark.slow


def test_trial_faults_are_retried_then_recorded_and_the_study_goes_on(ray_session, tmp_path, monkeypatch) -> None:
    faults = {
        "attention=true|seed=0": "raise",
        "attention=true|seed=1": "oom",
        "attention=false|seed=0": "nan_scores",
        "attention=false|seed=1": "bad_checkpoint",
    }
    monkeypatch.setenv(FAULTS_ENV, json.dumps(faults))
    study = write_study(
        tmp_path / "study.yaml",
        seeds=[0, 1, 2],
        train={"iterations": 6, "batch_size": 4, "log_every": 1},
        resources={"cpus_per_trial": 1, "retries": 1, "checkpoint_seconds": 0.001},
    )
    out = tmp_path / "out"
    assert main([str(study), "--out", str(out)]) == 1  # some trials failed; the others and the report are written
    trials = pd.read_parquet(out / TRIALS_FILE).set_index("trial_key")
    assert len(trials) == 6 and trials.index.is_unique

    def row(variant: str, seed: int) -> pd.Series:
        return trials.loc[f"{variant}|seed={seed}|nut"]

    for key, says in [
        (("attention=true", 0), "InjectedFault: injected fault: the trial raised"),
        (("attention=true", 1), "OutOfMemoryError: injected: out of memory"),
        (("attention=false", 0), "FloatingPointError: non-finite anomaly scores for"),
    ]:
        failed = row(*key)
        assert failed["status"] == "failed" and says in failed["error"], failed["error"]
        assert "\n" not in failed["error"] and np.isnan(failed["auc"])  # never an AUC from NaN scores
        assert failed["attempts"] == 2  # the first run and its one retry
    # the unloadable checkpoint: the retry trains from the start instead, and succeeds
    recovered, clean = row("attention=false", 1), row("attention=false", 2)
    assert recovered["status"] == "ok" and recovered["attempts"] == 2 and clean["attempts"] == 1
    assert row("attention=true", 2)["status"] == "ok"
    scores = pd.read_parquet(out / SCORES_FILE)
    for key in trials.index[trials["status"] == "ok"]:  # every AUC recomputes from the saved scores
        test = scores[(scores["trial_key"] == key) & (scores["split"] == "test")]
        assert trials.loc[key, "auc"] == pytest.approx(auc_or_nan(test["label"], test["score"]))
    assert set(scores["trial_key"]) == set(trials.index[trials["status"] == "ok"])
    report = render_report(out).read_text()
    assert "## Failed trials (3)" in report
    for reason in ("InjectedFault", "OutOfMemoryError", "FloatingPointError"):
        assert f"| {reason} | 1 |" in report, report


def test_the_same_faults_in_the_serial_runner(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(FAULTS_ENV, json.dumps({"attention=true": "oom", "attention=false|seed=0": "nan_scores"}))
    study = write_study(tmp_path / "study.yaml", seeds=[0, 1])
    out = tmp_path / "out"
    assert main([str(study), "--out", str(out), "--serial", "--no-report"]) == 1
    trials = pd.read_parquet(out / TRIALS_FILE).set_index("trial_key")
    assert trials["status"].to_dict() == {
        "attention=true|seed=0|nut": "failed",
        "attention=true|seed=1|nut": "failed",
        "attention=false|seed=0|nut": "failed",
        "attention=false|seed=1|nut": "ok",
    }
    assert trials["error"].str.contains("OutOfMemoryError|non-finite anomaly scores").sum() == 3
