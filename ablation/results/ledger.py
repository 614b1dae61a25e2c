"""The output folder of a study: its file names, the ledger that writes it, and the reader that loads it back.

`trials.parquet` has one row per grid point (keyed by the trial key, not Ray's trial id, which changes when a study is
resumed); a new outcome for a key replaces the old one, in all three Parquet files. Every file is rewritten whole and
atomically (a temporary file, then `os.replace`) after each finished trial, so a reader never sees a partial file
and a crash loses nothing finished. `study.yaml` is the validated study as it ran.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..study.schema import Study

TRIALS_FILE, SCORES_FILE, HISTORY_FILE = "trials.parquet", "scores.parquet", "history.parquet"
STUDY_FILE = "study.yaml"
REQUIRED = ("trial_key", "variant", "seed", "category", "status", "auc")  # what makes a file a trials ledger


class ResultsError(Exception):
    """A folder that cannot be read as a study's results; one line for the user."""


class ResultStore:
    """The Parquet files of one study output folder, loaded once and rewritten as trials finish."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.trials = _read_if_present(self.out / TRIALS_FILE)
        self.scores = _read_if_present(self.out / SCORES_FILE)
        self.history = _read_if_present(self.out / HISTORY_FILE)

    def __len__(self) -> int:
        return len(self.trials)

    def trial_keys(self, status: str | None = None) -> set[str]:
        if self.trials.empty:
            return set()
        rows = self.trials if status is None else self.trials[self.trials["status"] == status]
        return set(rows["trial_key"])

    def count(self, status: str) -> int:
        return 0 if self.trials.empty else int((self.trials["status"] == status).sum())

    def add(self, row: dict[str, Any], scores: pd.DataFrame | None = None, history: pd.DataFrame | None = None) -> None:
        """Record one trial's outcome (replacing any earlier outcome of the same key) and write the files."""
        key = row["trial_key"]
        self.trials = _replace(self.trials, pd.DataFrame([row]), key)
        self.scores = _replace(self.scores, scores, key)
        self.history = _replace(self.history, history, key)
        self.out.mkdir(parents=True, exist_ok=True)
        write_parquet(self.trials, self.out / TRIALS_FILE)
        write_parquet(self.scores, self.out / SCORES_FILE)
        write_parquet(self.history, self.out / HISTORY_FILE)

    def save_study(self, study: Study) -> None:
        """Write the validated study beside the results (what the report reads, and a file that runs again)."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(yaml.safe_dump(study.to_dict(), sort_keys=False), self.out / STUDY_FILE)


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
    trials = _read_parquet(trials_path)
    missing = [c for c in REQUIRED if c not in trials]
    if missing:
        raise ResultsError(f"{trials_path}: not a trials ledger (missing columns: {', '.join(missing)})")
    scores = _read_parquet(out / SCORES_FILE) if (out / SCORES_FILE).exists() else pd.DataFrame()
    history = _read_parquet(out / HISTORY_FILE) if (out / HISTORY_FILE).exists() else pd.DataFrame()
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
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_text(text: str, path: Path) -> None:
    """Write a text file atomically, as `write_parquet`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a truncated or foreign file
        raise ResultsError(f"{path}: cannot read as Parquet ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def _read_if_present(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def _replace(frame: pd.DataFrame, new: pd.DataFrame | None, key: str) -> pd.DataFrame:
    if not frame.empty:
        frame = frame[frame["trial_key"] != key]
    if new is None or new.empty:
        return frame.reset_index(drop=True)
    if frame.empty:
        return new.reset_index(drop=True)
    return pd.concat([frame, new], ignore_index=True)
