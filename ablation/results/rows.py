"""A finished trial -> its rows: one `trials.parquet` row, its per-image scores and its training history.

The row schema in one place: which columns a trial row has, in which order. Runs without torch or the model library
(the trial spec and the training result are read through their attributes), so the ledger and the report stay light.
"""

from __future__ import annotations

import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ssagan_core.data import CategoryData, ImageSet
    from ssagan_core.training import TrainResult

    from ..run.context import RunContext
    from ..study.design import TrialSpec

OK, FAILED, STOPPED = "ok", "failed", "stopped"
# Which trial: identity columns, first in every row.
IDENTITY = ("study", "trial_key", "trial_id", "variant", "seed", "dataset", "category", "design")
# What the trial measured (NaN when it did not finish), in this order after `status` and `error`.
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
# Where and when it ran, and which code; last in every row.
PROVENANCE = ("node", "host", "device", "started_at", "finished_at", "code_version")
RESOURCES = ("cpus", "gpus")  # the trial's share of the cluster (finished trials)
SCORE_COLUMNS = ("trial_key", "trial_id", "split", "path", "label", "defect", "score", "rec", "lat")
SCORE_PARTS = ("rec", "lat")  # the parts of a skip model's score, NaN for other models


def settings(spec: TrialSpec) -> dict[str, Any]:
    """Every model and train setting of a trial, one column each, named as the config field (= the study key)."""
    model = spec.model.to_dict()
    stages = model.pop("attention_stages")
    model["attention_stages"] = "all" if stages is None else ",".join(map(str, stages))
    return {**model, **spec.train.settings()}


def make_row(
    spec: TrialSpec,
    context: RunContext,
    status: str,
    metrics: dict[str, Any] | None = None,
    error: str = "",
    trial_id: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """One trials.parquet row: identity, settings, status, metrics, the final losses, provenance, then `extra`
    (`node`, `host`, `device`, `started_at`, `finished_at` fill their provenance columns; anything else is appended)."""
    metrics = metrics or {}
    row = {
        "study": context.study,
        "trial_key": spec.key,
        "trial_id": trial_id,
        "variant": spec.variant,
        "seed": spec.seed,
        "dataset": context.dataset,
        "category": spec.category,
        "design": context.design,
        **settings(spec),
        "status": status,
        "error": error,
        **{name: metrics.get(name, float("nan")) for name in METRICS},
        **{k: v for k, v in metrics.items() if k.startswith("final_")},
        "node": extra.pop("node", ""),
        "host": extra.pop("host", ""),
        "device": extra.pop("device", metrics.get("device", "")),
        "started_at": extra.pop("started_at", None),
        "finished_at": extra.pop("finished_at", now()),
        "code_version": context.code_version,
        **extra,
    }
    row["threshold_rule_used"] = row["threshold_rule_used"] if isinstance(row["threshold_rule_used"], str) else ""
    return row


def outcome(
    spec: TrialSpec, context: RunContext, result: TrainResult, data: CategoryData, trial_id: str, **extra: Any
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """A finished trial's (row, per-image scores of the test and validation splits, training history)."""
    resources = {"cpus": context.resources.cpus_per_trial, "gpus": context.resources.gpus_per_trial}
    row = make_row(spec, context, OK, result.metrics, trial_id=trial_id, host=host(), **extra, **resources)
    scores = pd.concat(
        [
            scores_frame(spec.key, trial_id, "test", data.test, result.test_scores),
            scores_frame(spec.key, trial_id, "val", data.val, result.val_scores),
        ],
        ignore_index=True,
    )
    return row, scores, history_frame(spec.key, trial_id, result.history)


def scores_frame(key: str, trial_id: str, split: str, images: ImageSet, scores: dict) -> pd.DataFrame:
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
    for part in SCORE_PARTS:
        frame[part] = scores.get(part, float("nan"))
    return frame


def history_frame(key: str, trial_id: str, history: list[dict]) -> pd.DataFrame:
    """One row per progress report: iteration, training seconds, the mean losses since the last report, val_auc."""
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
    root = Path(__file__).resolve().parents[2]
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


def plain(value: Any) -> Any:
    """A numpy scalar (as pandas returns a cell) as the Python value it holds."""
    return value.item() if hasattr(value, "item") else value
