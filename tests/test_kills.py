"""#11 item 1: the driver SIGKILLed at 10 random moments over one study (mid-trial, mid-write, mid-report), resumed
after each; at every moment the files read, and the final ledger is complete and exact."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ablation.results.ledger import SCORES_FILE, TRIALS_FILE, ResultStore, load_results
from ssagan_core.metrics import auc_or_nan

from .studies import write_study

ROOT = Path(__file__).resolve().parent.parent
KILLS = 10
TRIALS = 12


@pytest.mark.slow
def test_the_driver_killed_at_ten_random_moments(tmp_path) -> None:
    study = write_study(tmp_path / "study.yaml", seeds=[0, 1, 2, 3, 4, 5], train__iterations=6)  # 12 trials
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ablation.run", str(study), "--out", str(out), "--serial"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(11)
    finished: dict[str, str] = {}  # trial key -> finished_at of its ok row, as first seen after a kill
    kills, log = 0, []
    while True:
        first = not out.exists()
        run = subprocess.Popen(
            [*cmd] if first else [*cmd, "--resume"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        if kills < KILLS:
            # the moment: once `ahead` more rows have landed (0: during this run's first trial), then `delay`
            # seconds on: mid-trial, right after a row while its other files are written, or, once all the rows
            # are in, during the report
            done = _rows(out)
            ahead = rng.choice([0, 0, 1]) if done < TRIALS else 0
            delay = rng.uniform(0.0, 4.0 if done + ahead >= TRIALS else 1.2)
            deadline = time.monotonic() + 300
            while run.poll() is None and _rows(out) < min(done + ahead, TRIALS) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(delay)
            if run.poll() is None:
                run.send_signal(signal.SIGKILL)
                run.wait()
                kills += 1
                log.append({"kill": kills, "rows_before": done, "rows_after": _check(out, finished)})
                continue
        code = run.wait(timeout=600)
        err = run.stderr.read()
        assert code == 0, err[-2000:]
        if kills >= KILLS:
            break  # killed 10 times, then let the last run finish the study and its report
        # the study finished before this kill: a fresh start into a new folder keeps the kills coming
        log.append({"finished_early_after": kills})
        out = tmp_path / f"out{len(log)}"
        cmd[cmd.index("--out") + 1] = str(out)
        finished.clear()
    rows = _check(out, finished)
    trials = pd.read_parquet(out / TRIALS_FILE)
    assert rows == TRIALS and trials["trial_key"].is_unique and set(trials["status"]) == {"ok"}
    scores = pd.read_parquet(out / SCORES_FILE)
    for key, group in scores[scores["split"] == "test"].groupby("trial_key"):  # every AUC recomputes
        auc = trials.set_index("trial_key").loc[key, "auc"]
        assert auc == pytest.approx(auc_or_nan(group["label"], group["score"]))
    assert scores.groupby(["trial_key", "split", "path"]).size().max() == 1  # no duplicated score rows
    assert (out / "report.md").exists() and not (out / ".lock").exists()
    (tmp_path / "kills.json").write_text(json.dumps(log))
    assert kills == KILLS


def _rows(out: Path) -> int:
    """Rows recorded so far (trials.parquet and the parts pending beside it), read as the runner writes them."""
    try:
        return len(ResultStore(out).trials)
    except Exception:  # a folder not yet made, or caught between two files: not a row more
        return 0


def _check(out: Path, finished: dict[str, str]) -> int:
    """The folder after a kill: the ledger reads; a trial seen finished keeps that row (never trained twice)."""
    if not (out / TRIALS_FILE).exists() and not (out / ".trials.pending").exists():
        return 0
    results = load_results(out)
    ok = results.trials[results.trials["status"] == "ok"]
    for key, at in zip(ok["trial_key"], ok["finished_at"].astype(str), strict=True):
        assert finished.setdefault(key, at) == at, f"{key} was trained again"
    assert set(results.scores["trial_key"]) <= set(results.trials["trial_key"])
    return len(ok)
