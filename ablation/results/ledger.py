"""The output folder of a study: its file names, the ledger that writes it, and the reader that loads it back.

`trials.parquet` has one row per grid point (keyed by the trial key, not Ray's trial id, which changes when a study is
resumed); a new outcome for a key replaces the old one, in all three Parquet files. Every file is written atomically
(a temporary file, then `os.replace`), so a reader never sees a partial file and a crash loses nothing finished;
recording a trial writes its own scores and history only (see `ResultStore`), so its cost stays flat as a study
grows. `study.yaml` is the validated study as it ran.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..study.schema import Study

TRIALS_FILE, SCORES_FILE, HISTORY_FILE = "trials.parquet", "scores.parquet", "history.parquet"
STUDY_FILE = "study.yaml"
OPTUNA_FILE = "optuna.db"  # a search study's Optuna history (SQLite; ablation.run.search_history)
GALLERIES = "galleries"  # one PNG per trial with anomaly maps
PENDING_TRIALS = ".trials.pending"  # trials rows recorded since trials.parquet was last rewritten, one part each
TRIALS_REWRITE_S = 1.0
REQUIRED = ("trial_key", "variant", "seed", "category", "status", "auc")  # what makes a file a trials ledger


class ResultsError(Exception):
    """A folder that cannot be read as a study's results; one line for the user."""


class LedgerWriteError(Exception):
    """The output folder stopped taking writes (disk full, read-only, gone); one line for the user. What was
    recorded before stays readable: every file is replaced atomically, so a failed write leaves the old one."""


class ResultStore:
    """The Parquet files of one study output folder, written as trials finish at a cost that does not grow with them.

    `trials.parquet` (one small row per trial, also kept in memory for the driver's bookkeeping) is rewritten whole.
    The per-image `scores` and per-step `history` rows are not kept in memory: while a study runs, each of those two
    tables is a folder named like the file (`scores.parquet/`) of one part file per trial key (`part-<hash>.parquet`,
    written atomically, so a new outcome of a key replaces its part), which pandas and pyarrow read as one table.
    `finish()` folds each folder back into one file (the form at rest), swapping it in so that a reader sees the whole
    folder or the whole file at every moment (`load_results` also reads a folder caught mid-swap).
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.trials = _read_trials(self.out)
        self._opened: set[str] = set()  # the tables whose folder this store has made ready for parts
        self._unsaved = 0  # rows recorded as pending parts only, not yet in trials.parquet
        self._next_rewrite = 0.0  # when trials.parquet may be rewritten next (time.monotonic)

    def __len__(self) -> int:
        return len(self.trials)

    def trial_keys(self, status: str | None = None) -> set[str]:
        if self.trials.empty:
            return set()
        rows = self.trials if status is None else self.trials[self.trials["status"] == status]
        return set(rows["trial_key"])

    def count(self, status: str) -> int:
        return 0 if self.trials.empty else int((self.trials["status"] == status).sum())

    def add(
        self,
        row: dict[str, Any],
        scores: pd.DataFrame | None = None,
        history: pd.DataFrame | None = None,
        gallery: bytes | None = None,
    ) -> None:
        """Record one trial's outcome (replacing any earlier outcome of the same key): its gallery PNG (into
        `galleries/`, named in the row's `gallery`), scores and history as part files first, then its row in
        trials.parquet, so a row never points at missing scores or a missing picture."""
        try:
            self._add(row, scores, history, gallery)
        except OSError as e:
            raise LedgerWriteError(
                f"{self.out}: cannot write the results ({e.strerror or e}); the {len(self.trials)} trials recorded "
                f"before are kept; free space or make the folder writable, then --resume"
            ) from None

    def _add(
        self, row: dict[str, Any], scores: pd.DataFrame | None, history: pd.DataFrame | None, gallery: bytes | None
    ) -> None:
        key = row["trial_key"]
        self.out.mkdir(parents=True, exist_ok=True)
        picture = self.out / GALLERIES / f"{_key_hash(key)}.png"
        if gallery:
            picture.parent.mkdir(exist_ok=True)
            write_bytes(gallery, picture)
            row = {**row, "gallery": f"{GALLERIES}/{picture.name}"}
        else:
            picture.unlink(missing_ok=True)
            row = {**row, "gallery": row.get("gallery") or ""}
        for name, frame in ((SCORES_FILE, scores), (HISTORY_FILE, history)):
            folder = self._parts_folder(name)
            part = folder / part_name(key)
            if frame is not None and not frame.empty:
                write_parquet(frame.reset_index(drop=True), part)
            elif part.exists():
                part.unlink()  # the new outcome has none: the old outcome's rows must not outlive it
        pending = self.out / PENDING_TRIALS
        pending.mkdir(exist_ok=True)
        write_parquet(pd.DataFrame([row]), pending / part_name(key))  # durable at once, at a cost that stays flat
        self.trials = _replace(self.trials, pd.DataFrame([row]), key)
        self._unsaved += 1
        if time.monotonic() >= self._next_rewrite:
            self._rewrite_trials()

    def _rewrite_trials(self) -> None:
        """Rewrite trials.parquet whole with every recorded row, then drop the pending parts it now holds. Throttled
        so that rewriting takes at most a tenth of the driver's time: the next one waits 10x this one's duration (at
        least `TRIALS_REWRITE_S`)."""
        start = time.monotonic()
        pending = self.out / PENDING_TRIALS
        held = list(pending.glob("part-*.parquet")) if pending.is_dir() else []
        write_parquet(self.trials, self.out / TRIALS_FILE)
        for part in held:
            part.unlink()
        self._unsaved = 0
        took = time.monotonic() - start
        self._next_rewrite = time.monotonic() + max(TRIALS_REWRITE_S, 10 * took)

    def finish(self) -> None:
        """Fold every parts folder back into one Parquet file (what a finished study leaves); safe to call twice."""
        if self._unsaved or (self.out / PENDING_TRIALS).is_dir():
            self._rewrite_trials()
            shutil.rmtree(self.out / PENDING_TRIALS, ignore_errors=True)
        for name in (SCORES_FILE, HISTORY_FILE):
            folder = self.out / name
            if not folder.is_dir():
                continue
            frame = _read_table(folder)
            old = self.out / _swap_name(name)
            if frame.empty:  # no trial had rows for this table: no file, as before parts existed
                os.replace(folder, old)
                shutil.rmtree(old)
                continue
            tmp = self.out / f".{name}.{os.getpid()}.tmp"
            frame.to_parquet(tmp, index=False)
            os.replace(folder, old)  # the folder, whole, under its swap name: load_results reads it there
            os.replace(tmp, self.out / name)
            shutil.rmtree(old)
            self._opened.discard(name)

    def save_study(self, study: Study) -> None:
        """Write the validated study beside the results (what the report reads, and a file that runs again)."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(yaml.safe_dump(study.to_dict(), sort_keys=False), self.out / STUDY_FILE)

    def _parts_folder(self, name: str) -> Path:
        """The table's parts folder, made on first use: a file left by an earlier run (or a crash mid-swap) moves in
        as one part, keeping only the rows of keys whose trials.parquet row is a success (every other key will be
        recorded again, and its old rows must not stay beside the new)."""
        folder = self.out / name
        if name in self._opened:
            return folder
        moved = self.out / _swap_name(name, ".file")
        if moved.is_file() and not folder.exists():  # a crash while an earlier file moved into a folder
            os.replace(moved, folder)
        swap = self.out / _swap_name(name)
        if swap.is_dir():  # a crash between the two renames of finish(): the folder is whole, the file may be too
            if folder.is_file():
                folder.unlink()
            os.replace(swap, folder)
        if folder.is_file():
            ok = self.trial_keys("ok")
            earlier = _read_parquet(folder)
            earlier = earlier[earlier["trial_key"].isin(ok)] if "trial_key" in earlier else earlier.iloc[:0]
            tmp = self.out / f".{name}.{os.getpid()}.parts"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            if not earlier.empty:
                earlier.to_parquet(tmp / "part-earlier.parquet", index=False)
            os.replace(folder, self.out / _swap_name(name, ".file"))  # readers: absent for a moment, then the folder
            os.replace(tmp, folder)
            (self.out / _swap_name(name, ".file")).unlink()
        folder.mkdir(exist_ok=True)
        for stray in folder.glob(".*.tmp"):  # a part a crash left half-written
            stray.unlink()
        self._opened.add(name)
        return folder


def part_name(key: str) -> str:
    """The part file of one trial key in a parts folder."""
    return f"part-{_key_hash(key)}.parquet"


def _key_hash(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def _swap_name(name: str, suffix: str = ".folder") -> str:
    return f".{name}{suffix}"


@dataclass(frozen=True)
class Results:
    """A study's output folder, read back: the three Parquet files and the study that made them (None if absent)."""

    out: Path
    trials: pd.DataFrame
    scores: pd.DataFrame
    history: pd.DataFrame
    study: Study | None


def load_results(path: str | os.PathLike) -> Results:
    """Read an output folder (or its trials.parquet); `ResultsError` with one line if it is not a study's results.
    A missing or unreadable study.yaml gives `study=None` (the report then reads the factors off the rows)."""
    path = Path(path)
    out = path.parent if path.suffix == ".parquet" else path
    trials_path = path if path.suffix == ".parquet" else path / TRIALS_FILE
    if not trials_path.exists():
        where = "no such file or folder" if not path.exists() else f"no {TRIALS_FILE} in it"
        raise ResultsError(f"{path}: {where}; give a study's output folder or its {TRIALS_FILE}")
    trials = _read_trials(out) if trials_path == out / TRIALS_FILE else _read_parquet(trials_path)
    missing = [c for c in REQUIRED if c not in trials]
    if missing:
        raise ResultsError(f"{trials_path}: not a trials ledger (missing columns: {', '.join(missing)})")
    scores, history = _read_table(out / SCORES_FILE), _read_table(out / HISTORY_FILE)
    # A trial's row is written after its scores and history (the row is the commit): parts of a trial whose row
    # never landed (the driver killed in between) are not results; its rerun replaces them.
    keys = set(trials["trial_key"])
    scores, history = (t[t["trial_key"].isin(keys)] if "trial_key" in t else t for t in (scores, history))
    return Results(out, trials, scores, history, read_study(out))


def read_study(out: Path) -> Study | None:
    """The study saved in an output folder, or None when there is none or it cannot be read."""
    try:
        raw = yaml.safe_load((Path(out) / STUDY_FILE).read_text())
        return Study.from_dict(raw) if isinstance(raw, dict) else None
    except (OSError, yaml.YAMLError, TypeError, ValueError, AttributeError, StopIteration, IndexError):
        return None


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically: readers see the old file or the new one, never a partial one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a write cut short (disk full) leaves no partial file behind


def write_bytes(data: bytes, path: Path) -> None:
    """Write a binary file atomically, as `write_parquet`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(text: str, path: Path) -> None:
    """Write a text file atomically, as `write_parquet`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """Read one Parquet file through a single open handle: safe while a running study replaces the file.

    `pd.read_parquet(path)` opens a path more than once (the footer, then the pages); an `os.replace` in between
    pairs the old footer with the new pages and fails to decode ("Couldn't deserialize thrift", "Page was smaller than
    expected"). One handle pins one version of the file (measured: 2,899 of 5,674 path reads failed against a writer
    replacing the file in a loop, 0 of 2,571 through one handle).
    """
    import pyarrow as pa  # pandas imports it for Parquet anyway; not at module level, to keep the CLI's start quick

    with pa.OSFile(os.fspath(path)) as handle:
        return pd.read_parquet(handle)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return read_parquet(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # pyarrow raises several types for a truncated or foreign file
        raise ResultsError(f"{path}: cannot read as Parquet ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def _read_table(path: Path) -> pd.DataFrame:
    """A scores or history table: its file, its parts folder (while a study runs), or the folder under its swap name
    (caught between the two renames of `ResultStore.finish`); empty when there is none."""
    if not path.exists():
        swaps = (path.with_name(_swap_name(path.name)), path.with_name(_swap_name(path.name, ".file")))
        path = next((p for p in swaps if p.exists()), None)
        if path is None:
            return pd.DataFrame()
    if path.is_file():
        return _read_parquet(path)
    parts = []
    for part in sorted(path.glob("part-*.parquet")):
        try:
            parts.append(_read_parquet(part))
        except FileNotFoundError:  # a new outcome without rows deleted it, or finish() moved the folder away
            if not path.is_dir():
                return _read_table(path)  # read what finish() left: the file, or the folder under its swap name
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _read_trials(out: Path) -> pd.DataFrame:
    """trials.parquet with the pending rows recorded after its last rewrite (they replace rows of the same key)."""
    path, pending = out / TRIALS_FILE, out / PENDING_TRIALS
    rows = []  # the parts first: one that a running study folds in and deletes meanwhile is then in the file read next
    for part in sorted(pending.glob("part-*.parquet")) if pending.is_dir() else []:
        try:
            rows.append(read_parquet(part))
        except FileNotFoundError:
            continue
    trials = _read_parquet(path) if path.exists() else pd.DataFrame()
    for row in rows:
        trials = _replace(trials, row, row["trial_key"].iloc[0])
    return trials


def _replace(frame: pd.DataFrame, new: pd.DataFrame | None, key: str) -> pd.DataFrame:
    if not frame.empty:
        frame = frame[frame["trial_key"] != key]
    if new is None or new.empty:
        return frame.reset_index(drop=True)
    if frame.empty:
        return new.reset_index(drop=True)
    return pd.concat([frame, new], ignore_index=True)
