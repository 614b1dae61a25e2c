"""The ledger (ablation/results/ledger.py) on its own, with real Parquet files and no training: what one recorded trial
writes (its own parts only), replacement of a key's outcome, the fold into one file at the end, resuming onto a
finished folder, every crash point of the swaps, and a recording cost that stays flat as a study grows."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ablation.results.ledger import (
    HISTORY_FILE,
    SCORES_FILE,
    TRIALS_FILE,
    ResultStore,
    load_results,
    part_name,
    read_parquet,
    write_parquet,
)


def _row(key: str, status: str = "ok", auc: float = 0.7) -> dict:
    return {"study": "s", "trial_key": key, "variant": "v", "seed": 0, "category": "nut", "status": status, "auc": auc}


def _scores(key: str, n: int = 5, offset: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({
        "trial_key": key, "split": "test", "path": [f"img{i}.png" for i in range(n)],
        "label": [i % 2 for i in range(n)], "score": np.arange(n, dtype=float) + offset,
    })  # fmt: skip


def _history(key: str) -> pd.DataFrame:
    return pd.DataFrame({"trial_key": key, "iteration": [1, 2], "loss_g": [1.0, 0.5]})


def _record(store: ResultStore, key: str, **kw) -> None:
    store.add(_row(key, **kw), _scores(key), _history(key))


def test_a_trial_writes_its_own_parts_and_touches_no_other(tmp_path) -> None:
    store = ResultStore(tmp_path)
    _record(store, "a")
    first = tmp_path / SCORES_FILE / part_name("a")
    stamp = first.stat().st_mtime_ns
    time.sleep(0.01)
    _record(store, "b")
    assert first.stat().st_mtime_ns == stamp  # recording b left a's part alone
    assert sorted(p.name for p in (tmp_path / SCORES_FILE).iterdir()) == sorted([part_name("a"), part_name("b")])
    # while the study runs, pandas reads the folder as one table, and so does load_results
    assert len(pd.read_parquet(tmp_path / SCORES_FILE)) == 10
    results = load_results(tmp_path)
    assert sorted(results.trials["trial_key"]) == ["a", "b"] and len(results.scores) == 10 and len(results.history) == 4


def test_finish_folds_each_folder_into_one_file_with_the_same_rows(tmp_path) -> None:
    store = ResultStore(tmp_path)
    for key in "abc":
        _record(store, key)
    before = load_results(tmp_path)
    store.finish()
    assert (tmp_path / SCORES_FILE).is_file() and (tmp_path / HISTORY_FILE).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no swap or temporary left
    after = load_results(tmp_path)
    key = ["trial_key", "path"]
    pd.testing.assert_frame_equal(
        before.scores.sort_values(key).reset_index(drop=True), after.scores.sort_values(key).reset_index(drop=True)
    )
    assert len(after.history) == 6
    store.finish()  # twice is harmless
    assert (tmp_path / SCORES_FILE).is_file()


def test_a_new_outcome_replaces_the_old_rows_of_its_key(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.add(_row("a"), _scores("a", offset=0.0), _history("a"))
    store.add(_row("a", auc=0.9), _scores("a", offset=100.0), _history("a"))
    results = load_results(tmp_path)
    assert len(results.trials) == 1 and results.trials["auc"].item() == 0.9
    assert len(results.scores) == 5 and results.scores["score"].min() == 100.0
    store.add(_row("a", status="failed", auc=float("nan")))  # a failed outcome has no scores: the old ones go
    results = load_results(tmp_path)
    assert results.scores.empty and results.history.empty and results.trials["status"].item() == "failed"
    store.finish()
    assert not (tmp_path / SCORES_FILE).exists()  # nothing to fold: no file, as a study without scores has none


def test_resume_onto_a_finished_folder_keeps_successes_and_drops_what_runs_again(tmp_path) -> None:
    store = ResultStore(tmp_path)
    _record(store, "a")
    _record(store, "b")
    store.add(_row("c", status="failed"), _scores("c"))  # a failed row that kept some scores (as an old ledger might)
    store.finish()
    resumed = ResultStore(tmp_path)  # as `--resume` opens it
    assert len(resumed) == 3 and (tmp_path / SCORES_FILE).is_file()  # opening writes nothing
    _record(resumed, "c")  # c runs again
    scores = load_results(tmp_path).scores
    assert scores.groupby("trial_key").size().to_dict() == {"a": 5, "b": 5, "c": 5}
    resumed.finish()
    assert load_results(tmp_path).scores.groupby("trial_key").size().to_dict() == {"a": 5, "b": 5, "c": 5}


@pytest.mark.parametrize("moment", ["folder_moved_aside", "file_and_folder", "file_moved_aside", "stray_temporary"])
def test_every_crash_point_of_a_swap_reads_whole_and_recovers(tmp_path, moment) -> None:
    store = ResultStore(tmp_path)
    for key in "ab":
        _record(store, key)
    folder = tmp_path / SCORES_FILE
    if moment == "folder_moved_aside":  # finish() died between its two renames: only the swap name holds the folder
        os.replace(folder, tmp_path / f".{SCORES_FILE}.folder")
    elif moment == "file_and_folder":  # ... or after writing the file, before removing the folder
        whole = load_results(tmp_path).scores
        os.replace(folder, tmp_path / f".{SCORES_FILE}.folder")
        whole.to_parquet(folder, index=False)
    elif moment == "file_moved_aside":  # a resume died while moving a finished file into a new folder
        store.finish()
        os.replace(folder, tmp_path / f".{SCORES_FILE}.file")
    else:  # a part half-written when the driver was killed
        (folder / f".{part_name('c')}.123.tmp").write_bytes(b"PAR1 half")
    assert len(load_results(tmp_path).scores) == 10  # a reader sees every finished trial at every crash point
    resumed = ResultStore(tmp_path)
    _record(resumed, "c")
    resumed.finish()
    assert load_results(tmp_path).scores.groupby("trial_key").size().to_dict() == {"a": 5, "b": 5, "c": 5}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_recording_cost_stays_flat_as_the_study_grows(tmp_path) -> None:
    """The time to record a trial with 500 scores, at trials 20-40 and 380-400 of one study: the same work (one part
    per table plus the small trials row), so the late ones cost at most twice the early ones (the whole-file ledger
    it replaced cost 10x more at 400 trials than at 40)."""
    store = ResultStore(tmp_path)
    times = []
    for i in range(400):
        key = f"t{i:04d}"
        scores, history = _scores(key, n=500), _history(key)
        start = time.perf_counter()
        store.add(_row(key), scores, history)
        times.append(time.perf_counter() - start)
    early, late = np.median(times[20:40]), np.median(times[380:400])
    assert late < 2 * early, (early, late)
    store.finish()
    assert len(pd.read_parquet(tmp_path / SCORES_FILE)) == 400 * 500
    assert len(pd.read_parquet(tmp_path / TRIALS_FILE)) == 400


def test_load_results_reads_a_bare_folder_of_parts_as_pyarrow_does(tmp_path) -> None:
    store = ResultStore(tmp_path)
    for key in "abcd":
        _record(store, key)
    import pyarrow.parquet as pq

    assert pq.read_table(Path(tmp_path) / SCORES_FILE).num_rows == len(load_results(tmp_path).scores) == 20


def test_trials_rows_are_durable_before_trials_parquet_is_rewritten(tmp_path, monkeypatch) -> None:
    """Rewriting trials.parquet is throttled; a row recorded in between is a pending part that every reader (and a
    resume after a kill) sees, and `finish` folds it in."""
    from ablation.results import ledger

    monkeypatch.setattr(ledger, "TRIALS_REWRITE_S", 3600.0)
    store = ResultStore(tmp_path)
    _record(store, "a")  # the first row rewrites at once
    _record(store, "b")
    _record(store, "c")
    assert len(pd.read_parquet(tmp_path / TRIALS_FILE)) == 1  # b and c wait as pending parts
    assert sorted(load_results(tmp_path).trials["trial_key"]) == ["a", "b", "c"]
    assert sorted(ResultStore(tmp_path).trial_keys()) == ["a", "b", "c"]  # as a resume after a kill reads it
    store.add(_row("b", auc=0.9), _scores("b"), _history("b"))
    trials = load_results(tmp_path).trials.set_index("trial_key")
    assert len(trials) == 3 and trials.loc["b", "auc"] == 0.9
    store.finish()
    assert sorted(pd.read_parquet(tmp_path / TRIALS_FILE)["trial_key"]) == ["a", "b", "c"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_simulation_command_prints_its_figures(capsys) -> None:
    from ablation.results.simulate import main

    assert main(["--trials", "30", "--scores", "10"]) == 0
    printed = capsys.readouterr().out
    assert "record trial 30:" in printed and "read back:" in printed and "30 trials, 300 score rows" in printed


def test_parts_of_a_trial_whose_row_never_landed_are_not_results(tmp_path) -> None:
    """The driver killed after a trial's scores and history were written, before its row (the commit): readers see
    only the trials that have a row; the rerun's parts replace the orphans."""
    store = ResultStore(tmp_path)
    _record(store, "a|seed=0|nut")
    for name, frame in ((SCORES_FILE, _scores("b|seed=0|nut")), (HISTORY_FILE, _history("b|seed=0|nut"))):
        frame.to_parquet(store._parts_folder(name) / part_name("b|seed=0|nut"))  # the kill came before the row
    results = load_results(tmp_path)
    assert set(results.trials["trial_key"]) == {"a|seed=0|nut"}
    assert set(results.scores["trial_key"]) == {"a|seed=0|nut"} and set(results.history["trial_key"]) == {
        "a|seed=0|nut"
    }
    _record(store, "b|seed=0|nut")
    assert set(load_results(tmp_path).scores["trial_key"]) == {"a|seed=0|nut", "b|seed=0|nut"}


def test_a_reader_never_sees_a_file_mixed_from_two_versions_while_a_study_rewrites_it(tmp_path) -> None:
    """pd.read_parquet(path) opens a path twice (footer, then pages), so a file replaced between the two fails to
    decode (CI failed on it once); the ledger's readers use one handle. A writer replaces trials.parquet and a
    scores part in a loop while load_results reads: every read succeeds and holds exactly one version."""
    import threading

    store = ResultStore(tmp_path)
    _record(store, "a")
    stop, written = threading.Event(), [0]

    def write(n: int) -> None:  # version n: n + 1 trials rows of seed n, n + 1 score rows starting at n
        frame = pd.DataFrame([{**_row(f"k{i}"), "seed": n} for i in range(n)] + [_row("a") | {"seed": n}])
        write_parquet(frame, tmp_path / TRIALS_FILE)
        write_parquet(_scores("a", n=n + 1, offset=n), tmp_path / SCORES_FILE / part_name("a"))
        written[0] += 1

    def rewrite() -> None:
        n = 1
        while not stop.is_set():
            n = n % 40 + 1
            write(n)

    write(1)

    writer = threading.Thread(target=rewrite)
    writer.start()
    reads = 0
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            got = load_results(tmp_path)
            n = int(got.trials["seed"].iloc[0])
            assert len(got.trials) == n + 1 and (got.trials["seed"] == n).all()  # one version, whole
            scores = got.scores
            assert len(scores) >= 2 and scores["score"].iloc[0] == len(scores) - 1  # offset n, n + 1 rows
            assert len(read_parquet(tmp_path / TRIALS_FILE)) >= 2
            reads += 1
    finally:
        stop.set()
        writer.join()
    assert reads > 20 and written[0] > 20, (reads, written[0])
