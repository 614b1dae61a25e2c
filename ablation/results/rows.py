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

# The columns of trials.parquet, in order, with what each holds (docs/results.md is generated from these). Between
# IDENTITY and OUTCOME come the trial's settings: every `ModelConfig` field and every `TrainConfig.settings()` field,
# named as in the study file; after METRICS, one `final_<loss>` column per loss the model reports.
IDENTITY = {
    "study": "the study's name",
    "trial_key": "`<variant>|seed=<s>|<category>` (a search: `search#NNNN|seed=<s>|<category>`): the trial's "
    "identity, stable across resumes; one row per key",
    "trial_id": "Ray Tune's trial id (`serial-NNNN` under `--serial`); a rerun gets a new one",
    "variant": "the variant's factor values (`attention=false,conv=dsc`), or `base` when nothing is varied",
    "seed": "the seed of weights, batch order and noise",
    "dataset": "the dataset kind",
    "category": "the dataset category",
    "design": "`grid`, `loco` or `search`",
}
OUTCOME = {
    "status": "`ok`, `failed` (see `error`) or `stopped` (early, by ASHA)",
    "error": "a failed trial's error: its exception and message, one line",
    "attempts": "how many times the trial ran: 1, plus its retries (`resources.retries`) after a failure",
}
METRICS = {
    "auc": "test image-level ROC AUC of the raw scores",
    "aupr": "test average precision",
    "accuracy": "test accuracy at the validation threshold",
    "precision": "test precision at the validation threshold",
    "recall": "test recall at the validation threshold",
    "f1": "test F1 at the validation threshold",
    "f1_max": "the best F1 over all test thresholds: test-optimal, only for comparison with papers that report it",
    "threshold": "the decision threshold, from the validation split (`threshold_rule`)",
    "threshold_rule_used": "the rule that set it (`val_f1` falls back to `val_quantile` without validation defects)",
    "val_auc": "AUC on the validation split (normal images and synthetic defects): what searches select on",
    "pixel_auc": "test pixel-level ROC AUC of the anomaly maps against the masks (NaN: see `pixel_note`)",
    "aupro": "test per-region overlap, normalised area up to FPR 0.3 (MVTec AD's PRO; NaN: see `pixel_note`)",
    "pixel_note": "why `pixel_auc` and `aupro` are NaN (no masks in the dataset, none defective), else empty",
    "pixel_seconds": "time to compute `pixel_auc` and `aupro` from the maps (the maps are made within scoring)",
    "train_seconds": "training wall time, validation excluded",
    "score_seconds": "scoring time of the validation and test splits",
    "images_per_second": "training throughput",
    "params_generator": "parameters of the generator",
    "params_discriminator": "parameters of the discriminator",
    "d_reinits": "times the discriminator was re-initialised (`reinit_d_below`)",
    "n_train": "training images",
    "n_val": "validation images (normal and synthetic defects)",
    "n_val_normal": "validation normal images, held out from training (`dataset.val_fraction`, `val_min_images`); "
    "the threshold and `val_auc` rest on these and on as many synthetic defects",
    "n_test": "test images",
}
FINAL_LOSSES = "`final_loss_g`, `final_loss_d` and the loss parts (`final_adv`, `final_ctx`, `final_lat`): the mean of \
each loss over the last reporting interval"
PROVENANCE = {
    "node": "Ray's node id (`local` under `--serial`)",
    "host": "the machine's host name",
    "device": "`cpu`, or the CUDA device and its name",
    "started_at": "when the trial started (UTC, ISO 8601)",
    "finished_at": "when it finished",
    "code_version": "the package version and git commit (`-dirty` when the code had uncommitted changes)",
    "gallery": "the trial's gallery PNG, relative to the output folder (`galleries/<hash>.png`: fixed test images, "
    "false alarms and misses with reconstruction, map and mask; `ssagan_core.gallery`); empty without maps",
}
RESOURCES = {"cpus": "the trial's CPUs (finished trials)", "gpus": "its GPU share (finished trials)"}
SCORE_COLUMNS = {
    "trial_key": "the trial (as in trials.parquet)",
    "trial_id": "Ray's trial id",
    "split": "`test` or `val`",
    "path": "the image's file (or a synthetic image's id; validation defects end in `#val-<kind>`)",
    "label": "1 = defective, 0 = normal",
    "defect": "`good` or the defect kind",
    "score": "the anomaly score (higher = more anomalous), as thresholded and ranked",
    "rec": "skip models: the reconstruction error mean (x - G(x))^2 (NaN for other models)",
    "rec_max": "skip models: the maximum of the anomaly map (squared error, smoothed by `model.map_sigma`); the "
    "score's reconstruction part under `model.score_reduce: max` (NaN for other models and older ledgers)",
    "lat": "skip models: the latent error mean (f(x) - f(G(x)))^2 (NaN for other models)",
}
SCORE_PARTS = ("rec", "rec_max", "lat")  # the parts of a skip model's score, NaN for other models
HISTORY_COLUMNS = {
    "trial_key": "the trial",
    "trial_id": "Ray's trial id",
    "iteration": "iterations done at this report (every `log_every`, and at `eval_every`)",
    "seconds": "training seconds so far, validation excluded",
    "loss_g": "the generator's objective, mean since the last report",
    "loss_d": "the discriminator's objective, mean since the last report",
    "adv": "the adversarial loss, mean since the last report",
    "ctx": "the contextual (L1 reconstruction) loss (skip models, ganomaly)",
    "lat": "the latent loss (skip models, ganomaly)",
    "val_auc": "the validation AUC at evaluation points (`eval_every`), else empty",
}


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
        "attempts": extra.pop("attempts", 1),  # runs of the trial: 1 + its retries
        **{name: metrics.get(name, float("nan")) for name in METRICS},
        **{k: v for k, v in metrics.items() if k.startswith("final_")},
        "node": extra.pop("node", ""),
        "host": extra.pop("host", ""),
        "device": extra.pop("device", metrics.get("device", "")),
        "started_at": extra.pop("started_at", None),
        "finished_at": extra.pop("finished_at", now()),
        "code_version": context.code_version,
        "gallery": extra.pop("gallery", ""),
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
    """The package version and, in a git checkout, the commit, with `-dirty` when the code (the two packages and
    pyproject.toml; not reports or docs) differs from it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("ssagan-ablate")
    except PackageNotFoundError:
        v = "unknown"
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "ablation", "ssagan_core", "pyproject.toml")
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
