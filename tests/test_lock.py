"""One writer per output folder: a live holder refuses a second run at once; a dead holder's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ablation.results.ledger import TRIALS_FILE
from ablation.run import lock
from ablation.run.cli import main
from ablation.run.context import StartError
from ablation.run.lock import LOCK_FILE, hold_output

from .studies import write_study

# A process that takes the lock of argv[1], says so, and holds it for argv[2] seconds.
HOLDER = """
import sys, time
from ablation.run.lock import hold_output
from ablation.run.context import StartError
try:
    with hold_output(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
except StartError as e:
    print("refused", e, flush=True)
"""


def _holder(out: Path, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), str(seconds)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )


def _one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return " ".join(err.split())


def _contents(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def test_a_second_run_into_a_live_folder_is_refused_at_once(tmp_path, capsys) -> None:
    study = write_study(tmp_path / "study.yaml", seeds=[0])
    out = tmp_path / "out"
    holder = _holder(out, 60)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _contents(out)
        started = time.monotonic()
        assert main([str(study), "--out", str(out), "--serial", "--no-report"]) == 2
        assert time.monotonic() - started < 5  # at once, not after a wait
        err = _one_line(capsys.readouterr().err)
        assert "another run is writing this output folder" in err
        assert f"host {os.uname().nodename}" in err and f"pid {holder.pid}" in err
        assert _contents(out) == before  # nothing written, nothing touched but the holder's lock
        assert main([str(study), "--out", str(out), "--serial", "--no-report", "--resume"]) == 2  # resume too
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_runs_lock_does_not_block_resume(tmp_path, capsys) -> None:
    study = write_study(tmp_path / "study.yaml", seeds=[0])
    out = tmp_path / "out"
    holder = _holder(out, 60)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / LOCK_FILE).exists()  # left behind by the kill
    assert main([str(study), "--out", str(out), "--serial", "--no-report", "--resume"]) == 0
    assert (out / TRIALS_FILE).exists() and not (out / LOCK_FILE).exists()  # released at the end
    assert not list(out.glob(f"{LOCK_FILE}*"))


def test_a_lock_whose_pid_now_names_another_process_is_stale(tmp_path) -> None:
    """PID reuse: the recorded pid lives (this test's own), but its start time is not the recorded one."""
    out = tmp_path / "out"
    out.mkdir()
    record = {"host": os.uname().nodename, "pid": os.getpid(), "pid_start": "1", "token": "old", "since": "then"}
    (out / LOCK_FILE).write_text(json.dumps(record))
    with hold_output(out):
        assert json.loads((out / LOCK_FILE).read_text())["token"] != "old"
    record["pid_start"] = lock._process_start(os.getpid())  # the same pid, the same process: live
    (out / LOCK_FILE).write_text(json.dumps(record))
    with pytest.raises(StartError, match=f"pid {os.getpid()}"), hold_output(out):
        pass


def test_a_lock_from_another_host_holds_while_its_heartbeat_is_fresh(tmp_path) -> None:
    """On shared storage the pid cannot be checked: the holder's heartbeat (the file's mtime) decides."""
    out = tmp_path / "out"
    out.mkdir()
    record = {"host": "node-7.cluster", "pid": 4242, "token": "theirs", "since": "2026-12-03T09:00:00+00:00"}
    (out / LOCK_FILE).write_text(json.dumps(record))
    with pytest.raises(StartError, match=r"host node-7\.cluster, pid 4242, since 2026-12-03"), hold_output(out):
        pass
    old = time.time() - lock.STALE_AFTER_S - 5
    os.utime(out / LOCK_FILE, (old, old))
    with hold_output(out):
        assert json.loads((out / LOCK_FILE).read_text())["host"] == os.uname().nodename


def test_the_holder_keeps_its_heartbeat(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lock, "HEARTBEAT_S", 0.05)
    out = tmp_path / "out"
    with hold_output(out) as path:
        first = path.stat().st_mtime_ns
        time.sleep(0.5)
        assert path.stat().st_mtime_ns > first
    assert not path.exists()


def test_a_half_written_lock_is_refused_while_fresh_and_taken_when_old(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text('{"host": "no')  # a holder killed while writing it, or still writing it
    with pytest.raises(StartError, match="another run is taking this output folder"), hold_output(out):
        pass
    old = time.time() - lock.STALE_AFTER_S - 5
    os.utime(out / LOCK_FILE, (old, old))
    with hold_output(out):
        pass


@pytest.mark.parametrize("stale", [False, True], ids=["fresh folder", "stale lock"])
def test_of_runs_racing_for_one_folder_exactly_one_holds_it(tmp_path, stale: bool) -> None:
    out = tmp_path / "out"
    if stale:  # every racer finds a dead holder's lock and tries to break it
        out.mkdir()
        dead = {"host": os.uname().nodename, "pid": 2**22 + 1, "token": "dead", "since": "then"}
        (out / LOCK_FILE).write_text(json.dumps(dead))
    racers = [_holder(out, 4) for _ in range(4)]
    said = [r.communicate(timeout=60)[0].split()[0] for r in racers]
    assert sorted(said) == ["held", "refused", "refused", "refused"], said
    assert not list(out.glob(f"{LOCK_FILE}*"))


def test_an_output_path_that_is_a_file_is_refused(tmp_path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(StartError, match="is a file, not a folder"), hold_output(tmp_path / "out"):
        pass


def test_resume_with_an_edited_study_continues_additions_and_refuses_changes(tmp_path, capsys) -> None:
    """#11 item 6: added seeds or grid values continue (and the run says so); a changed setting is refused, naming
    the keys, before anything is written."""
    out = tmp_path / "out"
    first = write_study(tmp_path / "study.yaml", seeds=[0], grid={"model.attention": [False]})
    assert main([str(first), "--out", str(out), "--serial", "--no-report"]) == 0
    trained = pd.read_parquet(out / TRIALS_FILE).set_index("trial_key")["trial_id"]

    changed = write_study(
        tmp_path / "changed.yaml", seeds=[0], grid={"model.attention": [False]}, train__lr=0.01, model__ndf=8
    )
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*"))
    capsys.readouterr()
    assert main([str(changed), "--out", str(out), "--serial", "--no-report", "--resume"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "the study changed since" in err and "in what its trials train (model.ndf, train.lr)" in err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*")) == before

    grown = write_study(
        tmp_path / "grown.yaml",
        seeds=[0, 1],
        grid={"model.attention": [False, True]},
        resources={"cpus_per_trial": 1, "retries": 2},
    )
    assert main([str(grown), "--out", str(out), "--serial", "--no-report", "--resume"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "continuing: grid.model.attention: added True" in err and "continuing: seeds: added 1" in err
    assert "continuing: resources.retries: 0 -> 2" in err
    after = pd.read_parquet(out / TRIALS_FILE).set_index("trial_key")
    assert len(after) == 4 and after.loc[trained.index, "trial_id"].equals(trained)  # the first trial kept, not rerun
