"""The Ray Tune trainable: a thin adapter from a Tune trial to `ssagan_core.train`.

It takes its category's arrays from the object store, trains on the device Ray gave it (CUDA when the trial holds a
GPU share, else CPU with torch threads = the trial's CPUs), reports progress with `ray.tune.report`, checkpoints
for retries, and ends with one report whose checkpoint holds the trial's row, per-image scores and history.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
import torch
from ray import tune

from ..results.ledger import part_name
from ..results.rows import now, outcome, plain
from ..study.design import TrialSpec
from . import faults
from .context import RunContext, device_label

if TYPE_CHECKING:
    from ssagan_core.training import Progress

STATE_FILE, ROW_FILE = "state.pt", "row.json"
SCORES_PART, HISTORY_PART, GALLERY_PART = "scores.parquet", "history.parquet", "gallery.png"


def run_trial(
    config: dict[str, Any], *, specs: Callable[[dict], TrialSpec], data_refs: dict[str, Any], context: RunContext
) -> None:
    """Tune function trainable. `specs(config) -> TrialSpec` maps Tune's config to the trial to run."""
    # Imported here, in the trial's worker: the driver imports this module only to name the function, and the
    # training stack (scikit-learn, SciPy) would add half a second to a study's start there.
    from ssagan_core.training import train

    spec = specs(config)
    data = ray.get(data_refs[spec.category])
    if context.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("the trial was given a GPU share but CUDA is not available on its node")
    torch.set_num_threads(context.threads)
    train_cfg = dataclasses.replace(spec.train, device=context.device, num_threads=context.threads)

    fault = faults.fault_for(context.faults, spec.key)
    checkpoint = tune.get_checkpoint()
    resume = _load_state(checkpoint) if checkpoint is not None else None  # a retry: from the last saved state
    started = now()
    last_save = time.monotonic()

    marker = Path(context.storage, f".fault-{part_name(spec.key)}.died") if fault and context.storage else None

    def report(p: Progress) -> None:
        nonlocal last_save
        faults.at_report(fault, p)
        faults.worker_dies(fault, marker)
        if fault == "bad_checkpoint" and checkpoint is None and p.iteration >= 2:  # the first attempt only
            with tempfile.TemporaryDirectory() as d:
                Path(d, STATE_FILE).write_bytes(b"not a torch checkpoint")
                tune.report({"iteration": p.iteration}, checkpoint=tune.Checkpoint.from_directory(d))
            raise faults.InjectedFault("injected: the trial died after saving a checkpoint that cannot be loaded")
        metrics = {"iteration": p.iteration, "images_per_second": p.images_per_second, **p.losses}
        if p.val_auc is not None and math.isfinite(p.val_auc):
            metrics["val_auc"] = p.val_auc
        if p.iteration < p.iterations and time.monotonic() - last_save >= context.resources.checkpoint_seconds:
            with tempfile.TemporaryDirectory() as d:
                torch.save(p.state(), Path(d) / STATE_FILE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            last_save = time.monotonic()
        else:
            tune.report(metrics)

    result = train(spec.model, train_cfg, data, spec.seed, callback=report, resume=resume)

    trial_id = tune.get_context().get_trial_id()
    node = ray.get_runtime_context().get_node_id()[:12]
    device = device_label(str(result.metrics["device"]))
    row, scores, history = outcome(spec, context, result, data, trial_id, node=node, started_at=started, device=device)
    with tempfile.TemporaryDirectory() as d:
        Path(d, ROW_FILE).write_text(json.dumps(row, default=lambda v: plain(v) if hasattr(v, "item") else str(v)))
        scores.to_parquet(Path(d) / SCORES_PART, index=False)
        history.to_parquet(Path(d) / HISTORY_PART, index=False)
        if result.gallery:
            Path(d, GALLERY_PART).write_bytes(result.gallery)
        final = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        tune.report({**final, "done": 1}, checkpoint=tune.Checkpoint.from_directory(d))


def _load_state(checkpoint: tune.Checkpoint) -> dict | None:
    """The training state saved in a retry's checkpoint; None (train from the start: the same seed gives the same
    trial) when there is none or it cannot be loaded (a file cut short by the crash that caused the retry)."""
    with checkpoint.as_directory() as d:
        path = Path(d) / STATE_FILE
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # unpickling raises many types; any of them means "not a usable state"
            print(f"checkpoint {path} cannot be loaded ({type(e).__name__}: {e}); training from the start")
            return None
