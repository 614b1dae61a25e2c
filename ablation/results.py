"""The results ledger: `trials.parquet`, `scores.parquet` and `history.parquet` in the study's output folder.

One row per grid point (keyed by the trial key, not Ray's trial id, which changes when a study is resumed); a new
outcome for a key replaces the old one. Every file is rewritten whole and atomically (a temporary file, then
`os.replace`) after each finished trial, so a reader never sees a partial file and a crash loses nothing finished.
"""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ssagan_core import CategoryData, TrainResult

from .design import TrialSpec

TRIALS_FILE, SCORES_FILE, HISTORY_FILE = "trials.parquet", "scores.parquet", "history.parquet"
OK, FAILED, STOPPED = "ok", "failed", "stopped"
METRICS = (
    "auc",
    "aupr",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "f1_max",
    "threshold",
    "threshold_rule_used",
    "val_auc",
    "train_seconds",
    "score_seconds",
    "images_per_second",
    "params_generator",
    "params_discriminator",
    "d_reinits",
    "n_train",
    "n_val",
    "n_test",
)


class ResultStore:
    """The Parquet files of one study output folder, loaded once and rewritten as trials finish."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.trials = _read(self.out / TRIALS_FILE)
        self.scores = _read(self.out / SCORES_FILE)
        self.history = _read(self.out / HISTORY_FILE)

    def __len__(self) -> int:
        return len(self.trials)

    def trial_keys(self, status: str | None = None) -> set[str]:
        if self.trials.empty:
            return set()
        rows = self.trials if status is None else self.trials[self.trials["status"] == status]
        return set(rows["trial_key"])

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


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically: readers see the old file or the new one, never a partial one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def settings(spec: TrialSpec) -> dict[str, Any]:
    """Every model and train setting of a trial, one column each, named as in the study file."""
    model = spec.model.to_dict()
    stages = model.pop("attention_stages")
    model["attention_stages"] = "all" if stages is None else ",".join(map(str, stages))
    train = {k: v for k, v in spec.train.to_dict().items() if k not in ("device", "num_threads")}
    return {**model, **train}


def make_row(
    spec: TrialSpec,
    context: dict[str, Any],
    status: str,
    metrics: dict[str, Any] | None = None,
    error: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """One trials.parquet row. `context`: study, dataset, design, code_version (from the driver)."""
    metrics = metrics or {}
    row = {
        "study": context["study"],
        "trial_key": spec.key,
        "trial_id": extra.pop("trial_id", ""),
        "variant": spec.variant,
        "seed": spec.seed,
        "dataset": context["dataset"],
        "category": spec.category,
        "design": context["design"],
        **settings(spec),
        "status": status,
        "error": error,
        **{name: metrics.get(name, float("nan")) for name in METRICS},
        **{k: v for k, v in metrics.items() if k.startswith("final_")},
        "node": extra.pop("node", ""),
        "host": extra.pop("host", ""),
        "device": metrics.get("device", extra.pop("device", "")),
        "started_at": extra.pop("started_at", None),
        "finished_at": extra.pop("finished_at", now()),
        "code_version": context["code_version"],
        **extra,
    }
    row["threshold_rule_used"] = row["threshold_rule_used"] if isinstance(row["threshold_rule_used"], str) else ""
    return row


def outcome(
    spec: TrialSpec, context: dict[str, Any], result: TrainResult, data: CategoryData, trial_id: str, **extra: Any
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """A finished trial's (row, per-image scores of the test and validation splits, training history)."""
    resources = {"cpus": context["cpus_per_trial"], "gpus": context["gpus_per_trial"]}
    row = make_row(spec, context, OK, result.metrics, trial_id=trial_id, host=host(), **resources, **extra)
    if row["device"].startswith("cuda"):
        import torch

        row["device"] = f"{row['device']} ({torch.cuda.get_device_name()})"
    scores = pd.concat(
        [
            scores_frame(spec.key, trial_id, "test", data.test, result.test_scores),
            scores_frame(spec.key, trial_id, "val", data.val, result.val_scores),
        ],
        ignore_index=True,
    )
    return row, scores, history_frame(spec.key, trial_id, result.history)


def scores_frame(key: str, trial_id: str, split: str, images, scores: dict) -> pd.DataFrame:
    """Per-image scores of one split: path, label, defect, score (+ rec, lat where the model has them)."""
    frame = pd.DataFrame(
        {
            "trial_key": key,
            "trial_id": trial_id,
            "split": split,
            "path": list(images.paths),
            "label": images.labels.astype("int64"),
            "defect": list(images.defects),
            "score": scores["score"],
        }
    )
    for part in ("rec", "lat"):
        frame[part] = scores.get(part, float("nan"))
    return frame


def history_frame(key: str, trial_id: str, history: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(history)
    frame.insert(0, "trial_id", trial_id)
    frame.insert(0, "trial_key", key)
    if "val_auc" in frame:
        frame["val_auc"] = frame["val_auc"].astype("float64")
    return frame


def code_version() -> str:
    """The package version and, in a git checkout, the commit (with `-dirty` if the tree has changes)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("ssagan-ablate")
    except PackageNotFoundError:
        v = "unknown"
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{v}+g{sha}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return v


def host() -> str:
    return socket.gethostname()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def _replace(frame: pd.DataFrame, new: pd.DataFrame | None, key: str) -> pd.DataFrame:
    if not frame.empty:
        frame = frame[frame["trial_key"] != key]
    if new is None or new.empty:
        return frame.reset_index(drop=True)
    if frame.empty:
        return new.reset_index(drop=True)
    return pd.concat([frame, new], ignore_index=True)
