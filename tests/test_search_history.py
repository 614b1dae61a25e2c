"""#11 item 6: a search study's Optuna history in `OUT/optuna.db`: what the sampler saw is what the ledger holds, a
resume continues the same Optuna study with the trial budget exact (also after SIGKILLs mid-search), and
optuna-dashboard reads the file while the study runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from ablation.report.cli import render_report
from ablation.results.ledger import OPTUNA_FILE, TRIALS_FILE, ResultStore
from ablation.run.cli import main
from ablation.run.search_history import INTERRUPTED_ATTR, open_history, storage_url
from ablation.study.compare import resume_changes
from ablation.study.load import load_study, parse_study
from ablation.study.schema import Study

from .studies import TINY_STUDY, write_study

ROOT = Path(__file__).resolve().parent.parent
SEARCH = {
    "sampler": "tpe",
    "trials": 3,
    "seed": 0,
    "space": {"train.lr": {"log_uniform": [1.0e-4, 1.0e-2]}, "model.w_adv": {"uniform": [0.1, 1.0]}},
}


def _history(out: Path, name: str = "tiny/nut") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage_url(out))


def _named(study: optuna.Study) -> dict[str, list[optuna.trial.FrozenTrial]]:
    out: dict[str, list] = {}
    for t in study.trials:
        out.setdefault(t.user_attrs.get("trial"), []).append(t)
    return out


def _agrees(out: Path, trials: pd.DataFrame) -> None:
    """Every ledger row has a finished Optuna trial of its name with its val AUC, params and seed."""
    named = _named(_history(out))
    for _, row in trials.iterrows():
        name = row["trial_key"].split("|")[0]
        complete = [t for t in named[name] if t.state == TrialState.COMPLETE]
        assert complete, name
        t = complete[-1]
        assert t.value == pytest.approx(row["val_auc"]) and t.user_attrs["seed"] == row["seed"]
        assert t.params == {"train.lr": pytest.approx(row["lr"]), "model.w_adv": pytest.approx(row["w_adv"])}


def _dashboard_studies(out: Path) -> dict[str, int]:
    """optuna-dashboard's own web app on the file, asked what the browser asks: the study list, then each study's
    trials. {study name: trials}."""
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage_url(out))

    def get(path: str) -> dict:
        environ: dict = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.input": BytesIO()}
        setup_testing_defaults(environ)
        status: list[str] = []
        body = b"".join(app(environ, lambda s, headers, *_: status.append(s)))
        assert status[0].startswith("200"), (path, status)
        return json.loads(body)

    studies = get("/api/studies")["study_summaries"]
    return {s["study_name"]: len(get(f"/api/studies/{s['study_id']}")["trials"]) for s in studies}


def test_a_search_keeps_its_optuna_history_and_a_resume_continues_it(ray_session, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    study = write_study(tmp_path / "study.yaml", grid=None, search=SEARCH, seeds=[0, 1])
    assert main([str(study), "--out", str(out), "--no-report"]) == 0
    trials = pd.read_parquet(out / TRIALS_FILE)
    assert (out / OPTUNA_FILE).is_file() and len(trials) == 3
    history = _history(out)
    assert [t.state for t in history.trials] == [TrialState.COMPLETE] * 3
    assert [t.user_attrs["trial"] for t in history.trials] == ["search#0000", "search#0001", "search#0002"]
    _agrees(out, trials)
    assert _dashboard_studies(out) == {"tiny/nut": 3}
    assert render_report(out).read_text().count(f"optuna-dashboard sqlite:///{(out / OPTUNA_FILE).resolve()}") == 1
    first = [(t.number, t.params, t.value) for t in history.trials]

    # more trials of the same search: allowed, stated, and continued on the same Optuna study
    grown = write_study(tmp_path / "grown.yaml", grid=None, search={**SEARCH, "trials": 5}, seeds=[0, 1])
    assert main([str(grown), "--out", str(out), "--no-report", "--resume"]) == 0
    assert "search.trials: 3 -> 5" in capsys.readouterr().err
    after = pd.read_parquet(out / TRIALS_FILE).sort_values("trial_key")
    assert len(after) == 5 and after["trial_key"].is_unique and after["seed"].tolist() == [0, 1, 0, 1, 0]
    history = _history(out)
    assert len(history.trials) == 5 and [t.number for t in history.trials] == [0, 1, 2, 3, 4]
    assert [(t.number, t.params, t.value) for t in history.trials[:3]] == first
    _agrees(out, after)

    # a row lost from the ledger (a kill after Optuna was told, before the row landed): that name runs again;
    # the first result stays in the Optuna history as the evaluation it was
    kept = after[after["trial_key"] != "search#0001|seed=1|nut"]
    kept.to_parquet(out / TRIALS_FILE)
    assert main([str(grown), "--out", str(out), "--no-report", "--resume"]) == 0
    final = pd.read_parquet(out / TRIALS_FILE)
    assert len(final) == 5 and final["trial_key"].is_unique and "search#0001|seed=1|nut" in set(final["trial_key"])
    named = _named(_history(out))
    assert len(named["search#0001"]) == 2 and sum(len(v) for v in named.values()) == 6
    _agrees(out, final)


def _row(index: int, status: str = "ok", val_auc: float = 0.6, lr: float = 1e-3) -> dict:
    return {"trial_key": f"search#{index:04d}|seed={index % 2}|nut", "category": "nut", "status": status,
            "val_auc": val_auc, "seed": index % 2, "lr": lr, "w_adv": 0.5}  # fmt: skip


def test_resume_brings_the_optuna_history_in_line_with_the_ledger(tmp_path) -> None:
    """What a kill can leave, each case by hand: trials left running, with and without their ledger row; a result
    Optuna holds but the ledger lost; ledger rows the Optuna study lacks (its file deleted)."""
    out = tmp_path / "out"
    out.mkdir()
    study = load_study(write_study(tmp_path / "study.yaml", grid=None, search={**SEARCH, "trials": 8}, seeds=[0, 1]))
    history = optuna.create_study(study_name="tiny/nut", storage=storage_url(out), direction="maximize")
    dists = {
        "train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "model.w_adv": optuna.distributions.FloatDistribution(0.1, 1.0),
    }

    def running(name: str) -> optuna.Trial:
        t = history.ask(dists)
        t.set_user_attr("trial", name)
        return t

    t0 = running("search#0000")
    history.tell(t0, 0.6)  # told and recorded: nothing to do
    running("search#0001")  # its row landed, Optuna was never told
    running("search#0002")  # in flight when the driver died: no row
    running("search#0003")  # failed, recorded, never told
    t4 = running("search#0004")
    history.tell(t4, 0.9)  # Optuna was told, the row never landed
    nan = float("nan")
    rows = [_row(0), _row(1, val_auc=0.7), _row(3, "failed", nan), _row(5, val_auc=0.8), _row(6, "stopped", 0.55)]
    rows = pd.DataFrame(rows)
    resumed = open_history(out, study, "nut", rows)

    trials = _history(out).trials
    states = {(t.user_attrs["trial"], t.number): (t.state, t.value) for t in trials}
    assert states == {
        ("search#0000", 0): (TrialState.COMPLETE, 0.6),
        ("search#0001", 1): (TrialState.COMPLETE, 0.7),
        ("search#0002", 2): (TrialState.FAIL, None),
        ("search#0003", 3): (TrialState.FAIL, None),
        ("search#0004", 4): (TrialState.COMPLETE, 0.9),
        ("search#0005", 5): (TrialState.COMPLETE, 0.8),  # added from the ledger
        ("search#0006", 6): (TrialState.PRUNED, None),
    }
    assert trials[2].user_attrs[INTERRUPTED_ATTR] is True and INTERRUPTED_ATTR not in trials[1].user_attrs
    assert trials[5].params == {"train.lr": pytest.approx(1e-3), "model.w_adv": pytest.approx(0.5)}
    # the names without a row run next, in order, numbered after the history
    assert resumed.free == (2, 4, 7) and resumed.before == 7 and resumed.study_name == "tiny/nut"

    # opening again changes nothing; a fresh start (no rows) starts the Optuna study afresh
    assert open_history(out, study, "nut", rows).before == 7 and len(_history(out).trials) == 7
    fresh = open_history(out, study, "nut", pd.DataFrame(columns=rows.columns))
    assert fresh.before == 0 and fresh.free == tuple(range(8)) and _history(out).trials == []


@pytest.mark.slow
def test_a_search_killed_mid_way_resumes_with_its_history_and_an_exact_budget(tmp_path) -> None:
    """SIGKILL the driver twice while a 6-trial TPE search runs two trials at a time (once a row has landed, while
    optuna-dashboard reads the file), resume each time: 6 rows, each name once, every row in the Optuna history."""
    search = {**SEARCH, "trials": 6}
    study = write_study(
        tmp_path / "study.yaml", grid=None, search=search, seeds=[0, 1, 2], train__iterations=40,
        resources__max_concurrent=2,
    )  # fmt: skip
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ablation.run", str(study), "--out", str(out), "--no-report", "--num-cpus", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seen_by_dashboard, kills = [], 0
    for target in (1, 3):
        run = subprocess.Popen([*cmd, "--resume"] if kills else cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 300
        while run.poll() is None and _rows(out) < target and time.monotonic() < deadline:
            time.sleep(0.1)
        if run.poll() is None:
            seen_by_dashboard.append(_dashboard_studies(out))  # the file read while the study runs
            time.sleep(1.0)  # into the next trials
            run.send_signal(signal.SIGKILL)
            run.wait()
            kills += 1
        else:
            assert run.returncode == 0, run.stderr.read()[-2000:]
    run = subprocess.run([*cmd, "--resume"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert kills == 2 and all(seen.get("tiny/nut", 0) >= 1 for seen in seen_by_dashboard)

    trials = pd.read_parquet(out / TRIALS_FILE).sort_values("trial_key")
    assert trials["trial_key"].str.split("|").str[0].tolist() == [f"search#{i:04d}" for i in range(6)]
    assert set(trials["status"]) == {"ok"} and trials["seed"].tolist() == [0, 1, 2, 0, 1, 2]
    _agrees(out, trials)
    history = _history(out).trials
    assert not [t for t in history if t.state in (TrialState.RUNNING, TrialState.WAITING)]  # none left hanging
    interrupted = [t for t in history if t.user_attrs.get(INTERRUPTED_ATTR)]
    assert all(t.state == TrialState.FAIL for t in interrupted)
    # the budget: every trial the sampler proposed either has its row or was cut off by a kill (or its result
    # reached Optuna but not the ledger), and never more than 6 rows
    complete = [t for t in history if t.state == TrialState.COMPLETE]
    assert len(history) == len(complete) + len(interrupted) and len(complete) >= 6


def _rows(out: Path) -> int:
    try:
        return len(ResultStore(out).trials)
    except Exception:
        return 0


def test_a_resume_may_raise_a_searchs_trials_but_not_lower_them() -> None:
    def study(trials: int) -> Study:
        raw = {k: v for k, v in TINY_STUDY.items() if k != "grid"}
        return parse_study({**raw, "search": {**SEARCH, "trials": trials}})

    grown = "search.trials: 3 -> 5 (the search goes on from its Optuna history)"
    assert resume_changes(study(3), study(5)) == ([grown], [])
    assert resume_changes(study(5), study(3)) == ([], ["search.trials"])
