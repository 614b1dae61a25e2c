"""The runner end to end with real Ray Tune and Optuna on the embedded dataset (tiny sizes, seconds per trial)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ablation.results.ledger import HISTORY_FILE, SCORES_FILE, TRIALS_FILE, read_parquet
from ablation.run.cli import main

from .studies import write_study

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, *extra: str, **changes) -> tuple[int, Path]:
    out = tmp_path / "out"
    study = write_study(tmp_path / "study.yaml", **changes)
    return main([str(study), "--out", str(out), "--no-report", *extra]), out


def test_grid_study_end_to_end(ray_session, tmp_path, monkeypatch) -> None:
    from ablation.run import driver
    from ablation.run.progress import StudyView

    started, real_started = [], StudyView.started
    monkeypatch.setattr(
        StudyView, "started", lambda view, trial_id: (started.append(trial_id), real_started(view, trial_id))
    )
    imports = driver._ReportImports()
    monkeypatch.setattr(driver, "_REPORT_IMPORTS", imports)
    code, out = _run(tmp_path, dataset__categories=["nut", "wood"])
    assert code == 0
    # once the last trial had started and a slot went idle, the report's imports ran there, and ended with the run
    assert imports.thread is not None and not imports.thread.is_alive()
    trials = pd.read_parquet(out / TRIALS_FILE)
    # variants x seeds x categories, each exactly once
    assert len(trials) == 2 * 2 * 2 and trials["trial_key"].is_unique
    assert set(trials["status"]) == {"ok"} and trials["trial_id"].is_unique
    assert sorted(trials.groupby(["attention", "seed", "category"]).size()) == [1] * 8
    for column in ("study", "variant", "seed", "dataset", "category", "attention", "conv", "down", "up", "w_adv",
                   "w_ctx", "w_lat", "model", "lr", "iterations", "auc", "accuracy", "precision", "recall", "f1",
                   "threshold", "val_auc", "train_seconds", "images_per_second", "params_generator",
                   "params_discriminator", "node", "device", "started_at", "finished_at", "code_version"):  # fmt: skip
        assert column in trials.columns, column
    assert (
        trials["params_generator"][trials["attention"]] > trials["params_generator"][~trials["attention"]].max()
    ).all()
    # started longest first: attention's trials (the most counted work) before the others
    by_id = trials.set_index("trial_id")
    assert [bool(by_id.loc[i, "attention"]) for i in started] == [True] * 4 + [False] * 4

    # every AUC and threshold can be recomputed from the saved scores
    scores = pd.read_parquet(out / SCORES_FILE)
    for _, row in trials.iterrows():
        mine = scores[scores["trial_key"] == row["trial_key"]]
        test, val = mine[mine["split"] == "test"], mine[mine["split"] == "val"]
        assert len(test) == 8 and set(test["label"]) == {0, 1}
        assert roc_auc_score(test["label"], test["score"]) == pytest.approx(row["auc"], abs=1e-12)
        assert np.quantile(val[val["label"] == 0]["score"], 0.95) == pytest.approx(row["threshold"], abs=1e-12)
    history = pd.read_parquet(out / HISTORY_FILE)
    assert set(history["trial_key"]) == set(trials["trial_key"]) and (history["iteration"].max() == 4)

    # Ray's own experiment directory stays: one trial directory per grid point, TensorBoard events, restorable
    from ray import tune

    experiment = out / "ray" / "round-1"
    assert len(list(experiment.glob("trial_*"))) == 8
    assert list(experiment.glob("trial_*/events.out.tfevents.*"))
    assert tune.Tuner.can_restore(str(experiment))
    assert (out / "study.yaml").exists()

    # the same study again without --resume refuses, and touches nothing
    before = (out / TRIALS_FILE).stat().st_mtime_ns
    assert main([str(tmp_path / "study.yaml"), "--out", str(out), "--no-report"]) == 2
    assert (out / TRIALS_FILE).stat().st_mtime_ns == before


def test_resume_runs_only_what_is_missing(ray_session, tmp_path) -> None:
    code, out = _run(tmp_path)
    assert code == 0
    trials = pd.read_parquet(out / TRIALS_FILE)
    kept = trials.iloc[:2]
    kept.to_parquet(out / TRIALS_FILE)  # as if the study had stopped after two trials
    assert main([str(tmp_path / "study.yaml"), "--out", str(out), "--no-report", "--resume"]) == 0
    after = pd.read_parquet(out / TRIALS_FILE)
    assert len(after) == 4 and after["trial_key"].is_unique
    merged = after.merge(kept[["trial_key", "trial_id"]], on="trial_key", suffixes=("", "_before"))
    assert (merged["trial_id"] == merged["trial_id_before"]).all()  # finished trials were not rerun
    assert len(list((out / "ray").glob("round-2/trial_*"))) == 2


def test_a_failing_trial_is_recorded_and_the_study_goes_on(ray_session, tmp_path, capsys) -> None:
    # w_adv = 1e308 passes validation (finite) but overflows the generator loss: a real non-finite-loss failure
    code, out = _run(tmp_path, grid={"model.w_adv": [0.5, 1.0e308]}, seeds=[0], resources__retries=1)
    assert code == 1
    trials = pd.read_parquet(out / TRIALS_FILE).set_index("variant")
    assert trials.loc["w_adv=0.5", "status"] == "ok"
    failed = trials.loc["w_adv=1e+308"]
    assert failed["status"] == "failed"
    assert "FloatingPointError: non-finite loss by iteration 2" in failed["error"]
    assert np.isnan(failed["auc"]) and "\n" not in failed["error"]


def test_tpe_search_study(ray_session, tmp_path) -> None:
    search = {
        "sampler": "tpe",
        "trials": 3,
        "seed": 0,
        "space": {"train.lr": {"log_uniform": [1.0e-4, 1.0e-2]}, "model.w_adv": {"uniform": [0.1, 1.0]}},
    }
    code, out = _run(tmp_path, grid=None, search=search, seeds=[0, 1])
    assert code == 0
    trials = pd.read_parquet(out / TRIALS_FILE).sort_values("trial_key")
    assert len(trials) == 3 and set(trials["status"]) == {"ok"} and trials["design"].eq("search").all()
    assert trials["seed"].tolist() == [0, 1, 0]  # seeds are assigned round-robin, never searched
    assert trials["lr"].between(1e-4, 1e-2).all() and trials["lr"].nunique() == 3
    assert trials["val_auc"].notna().all()
    # resuming a finished search runs nothing more
    assert main([str(tmp_path / "study.yaml"), "--out", str(out), "--no-report", "--resume"]) == 0
    assert len(pd.read_parquet(out / TRIALS_FILE)) == 3


def test_search_with_asha_reports_val_auc_during_training(ray_session, tmp_path) -> None:
    search = {"sampler": "random", "trials": 3, "scheduler": "asha", "grace_period": 2, "reduction_factor": 2,
              "space": {"train.lr": {"log_uniform": [1.0e-5, 1.0e-2]}}}  # fmt: skip
    code, out = _run(tmp_path, grid=None, search=search, seeds=[0], train__eval_every=2, train__iterations=6)
    assert code == 0
    trials = pd.read_parquet(out / TRIALS_FILE)
    assert len(trials) == 3 and set(trials["status"]) <= {"ok", "stopped"}
    history = pd.read_parquet(out / HISTORY_FILE)
    assert history["val_auc"].notna().sum() >= 2


@pytest.mark.slow
def test_resume_after_the_driver_is_killed(tmp_path) -> None:
    """SIGKILL the CLI mid-study, then --resume: finished trials keep their rows, every point ends with one row."""
    study = write_study(
        tmp_path / "study.yaml",
        seeds=[0, 1, 2],
        train__iterations=60,
        dataset__categories=["nut"],
    )
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ablation.run", str(study), "--out", str(out), "--no-report"]
    driver = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        # read_parquet, not pd.read_parquet: the running driver replaces the file (see tests/test_ledger.py)
        if (out / TRIALS_FILE).exists() and len(read_parquet(out / TRIALS_FILE)) >= 2:
            break
        assert driver.poll() is None, driver.stdout.read().decode()[-2000:]
        time.sleep(0.5)
    before = read_parquet(out / TRIALS_FILE)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    assert 2 <= len(before) < 6, "the kill came too late to test anything"
    resumed = subprocess.run([*cmd, "--resume"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    after = pd.read_parquet(out / TRIALS_FILE)
    assert len(after) == 6 and after["trial_key"].is_unique and set(after["status"]) == {"ok"}
    same = after.merge(before[["trial_key", "trial_id"]], on="trial_key", suffixes=("", "_before"))
    assert len(same) == len(before) and (same["trial_id"] == same["trial_id_before"]).all()
    scores = pd.read_parquet(out / SCORES_FILE)
    assert set(scores["trial_key"]) == set(after["trial_key"])
    assert scores.groupby("trial_key").size().nunique() == 1  # no duplicated score rows from the killed run
    (tmp_path / "kill_report.json").write_text(json.dumps({"before": len(before), "after": len(after)}))


@pytest.mark.slow
def test_study_on_a_two_node_cluster(tmp_path) -> None:
    """A Ray cluster of two nodes on this machine: trials land on both, results come back to the driver."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        study = write_study(tmp_path / "study.yaml", seeds=[0, 1, 2], train__iterations=20)
        out, storage = tmp_path / "out", tmp_path / "shared_storage"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "ablation.run", str(study), "--out", str(out), "--no-report",
               "--address", cluster.address]  # fmt: skip
        refused = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2 and "give --storage a path every node can reach" in refused.stderr
        done = subprocess.run([*cmd, "--storage", str(storage)], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        trials = pd.read_parquet(out / TRIALS_FILE)
        assert len(trials) == 6 and set(trials["status"]) == {"ok"}
        assert trials["node"].nunique() == 2, trials["node"].tolist()
        assert (storage / "round-1").is_dir()
    finally:
        cluster.shutdown()


@pytest.mark.slow
def test_a_clean_run_prints_only_what_a_user_can_act_on(tmp_path) -> None:
    """The README's main command in miniature, in a fresh process with its own local Ray instance: every line it
    prints is the study's own (no Ray start-up notices, no token-authentication notice, no Tune banners)."""
    study = write_study(tmp_path / "study.yaml", seeds=[0])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "ablation.run", str(study), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    expected = (
        r"study tiny: 2 trials, 0 already recorded",
        r"\[[12]/2\] ok +attention=(true|false)\|seed=0\|nut  auc=\d\.\d{3} val_auc=\d\.\d{3}",
        r"report: .*report\.md",
        r"study tiny: 2 trials succeeded, 0 failed; results in .*out",
        r"Matplotlib is building the font cache; this may take a moment\.",  # once per machine, by matplotlib
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    unexpected = [line for line in lines if not any(re.fullmatch(p, line) for p in expected)]
    assert not unexpected, unexpected
    assert len(lines) >= 5


def _run_python(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a script in a fresh Python that starts its own local Ray (no $RAY_ADDRESS); it must succeed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_a_local_ray_instance_starts_no_idle_workers(tmp_path) -> None:
    """The driver's own local Ray instance starts worker processes on demand only (session.LOCAL_RAY_CONFIG): a
    second after `ray.init` there is no idle worker, where Ray's default would have started one per CPU. Then an
    actor still gets a worker (Tune's trials run in actors)."""
    script = (
        "import os, pathlib, time, ray\n"
        "from ablation.run.session import ray_session\n"
        "def descendants():\n"  # this driver's Ray processes (raylet, its workers), not another instance's
        "    parent = {}\n"
        "    for stat in pathlib.Path('/proc').glob('[0-9]*/stat'):\n"
        "        try:\n"
        "            fields = stat.read_text().rsplit(')', 1)[1].split()\n"
        "            parent[stat.parent] = int(fields[1])\n"
        "        except (OSError, IndexError, ValueError):\n"
        "            pass\n"
        "    mine, grew = {os.getpid()}, True\n"
        "    while grew:\n"
        "        new = {int(p.name) for p, pp in parent.items() if pp in mine} - mine\n"
        "        mine, grew = mine | new, bool(new)\n"
        "    return mine - {os.getpid()}\n"
        "def cmdline(pid):\n"
        "    try:\n"
        "        return pathlib.Path(f'/proc/{pid}/cmdline').read_bytes()\n"
        "    except OSError:\n"
        "        return b''\n"
        "with ray_session(None, 2, 0):\n"
        "    time.sleep(1.5)\n"
        "    idle = [pid for pid in descendants() if b'ray::IDLE' in cmdline(pid)]\n"
        "    A = ray.remote(num_cpus=1)(type('A', (), {'ping': lambda self: 'pong'}))\n"
        "    print(len(idle), ray.get(A.remote().ping.remote(), timeout=60), len(descendants()) > 0)\n"
    )
    done = _run_python(script, tmp_path)
    assert done.stdout.split() == ["0", "pong", "True"], done.stdout


def test_a_released_ray_shuts_down_beside_the_driver_and_a_borrowed_one_stays_up(ray_session, tmp_path) -> None:
    """RaySession.release (called when a run's trials are over): the driver's own Ray shuts down on a background
    thread, so release returns at once and the driver goes on (the ledger, the report) while Ray stops; leaving
    `ray_session` waits for it. A Ray the caller had started (this test session's) is left up."""
    from ablation.run.session import RaySession
    from ablation.run.session import ray_session as session_for_run

    with session_for_run(None, 2, 0) as borrowed:
        assert not borrowed.owned
        borrowed.release()
    assert ray_session.is_initialized()
    RaySession(owned=False).close()
    assert ray_session.is_initialized()

    script = (
        "import time, ray\n"
        "from ablation.run.session import ray_session\n"
        "with ray_session(None, 1, 0) as held:\n"
        "    assert held.owned and ray.get(ray.remote(lambda: 7).remote(), timeout=60) == 7\n"
        "    start = time.monotonic()\n"
        "    held.release()\n"
        "    released = time.monotonic() - start\n"
        "    held.release()\n"  # twice: one shutdown
        "print(f'{released:.3f}', round(time.monotonic() - start, 3), ray.is_initialized())\n"
    )
    done = _run_python(script, tmp_path)
    released, closed, up = done.stdout.split()
    assert float(released) < 0.2 < float(closed) and up == "False", done.stdout  # shutdown itself takes about 1.4 s


def test_serial_runner_gives_the_same_results_as_ray(ray_session, tmp_path) -> None:
    """The --serial debugging runner and the Ray trainable are the same trial: same rows, same scores (up to float
    rounding: the two processes may pick differently vectorised kernels)."""
    code, out = _run(tmp_path, seeds=[0])
    assert code == 0
    serial_out = tmp_path / "serial"
    assert main([str(tmp_path / "study.yaml"), "--out", str(serial_out), "--no-report", "--serial"]) == 0
    ray_rows = pd.read_parquet(out / TRIALS_FILE).set_index("trial_key").sort_index()
    serial_rows = pd.read_parquet(serial_out / TRIALS_FILE).set_index("trial_key").sort_index()
    assert list(ray_rows.index) == list(serial_rows.index)
    for column in ("auc", "val_auc", "threshold", "f1", "params_generator"):
        np.testing.assert_allclose(ray_rows[column].to_numpy(), serial_rows[column].to_numpy(), rtol=1e-5)
    a = pd.read_parquet(out / SCORES_FILE).sort_values(["trial_key", "split", "path"])
    b = pd.read_parquet(serial_out / SCORES_FILE).sort_values(["trial_key", "split", "path"])
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-5)


@pytest.mark.slow
def test_a_worker_node_lost_mid_trial(tmp_path) -> None:
    """#11 item 2: on a two-node cluster the worker node is killed while one of its trials trains; the trial is
    retried on the remaining node (from its checkpoint when it has one) and the study completes, one row each."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    worker_raylet = worker.all_processes["raylet"][0].process.pid
    try:
        study = write_study(
            tmp_path / "study.yaml",
            seeds=[0, 1, 2],
            train={"iterations": 60, "batch_size": 4, "log_every": 2},
            # retries: until Ray marks the node dead, a retry may be placed on it again
            resources={"cpus_per_trial": 1, "retries": 6, "checkpoint_seconds": 0.5},
        )
        out, storage = tmp_path / "out", tmp_path / "shared_storage"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "ablation.run", str(study), "--out", str(out), "--no-report",
               "--address", cluster.address, "--storage", str(storage)]  # fmt: skip
        driver = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline, killed = time.monotonic() + 300, None
        while killed is None and time.monotonic() < deadline and driver.poll() is None:
            killed = _trial_training_under(storage, worker_raylet)
            time.sleep(0.2)
        assert killed is not None, "no trial was seen training on the worker node"
        cluster.remove_node(worker, allow_graceful=False)
        log = driver.communicate(timeout=600)[0].decode()
        lines = [line for line in log.splitlines() if not line.startswith(("[state-dump]", "[20"))]  # Ray's noise
        rows = pd.read_parquet(out / TRIALS_FILE) if (out / TRIALS_FILE).exists() else None
        failed = (
            rows[rows["status"] != "ok"][["trial_key", "attempts", "error"]].to_dict("records")
            if rows is not None
            else None
        )
        assert driver.returncode == 0, (failed, lines[-30:])
        trials = pd.read_parquet(out / TRIALS_FILE).set_index("trial_key")
        assert len(trials) == 6 and set(trials["status"]) == {"ok"}, trials[["status", "error"]]
        retried = trials[trials["attempts"] > 1]
        assert len(retried) >= 1, trials[["attempts", "node"]]  # the trial that was training there
        assert (retried["node"] != worker.node_id[:12]).all()  # and it finished elsewhere
    finally:
        cluster.shutdown()


def _trial_training_under(storage: Path, raylet: int) -> dict | None:
    """A trial whose latest result came from a worker process of the node whose raylet is `raylet`, mid-training."""
    for result in storage.glob("round-*/trial_*/result.json"):  # Tune's results, written by the driver as they come
        lines = result.read_text().strip().splitlines()
        if not lines:
            continue
        try:
            last = json.loads(lines[-1])
            parent = int(Path(f"/proc/{last['pid']}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, KeyError, OSError):
            continue
        if parent == raylet and last.get("iteration", 0) >= 4 and not last.get("done"):
            return {"trial": result.parent.name}
    return None
