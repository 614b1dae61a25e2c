"""The serial runner: the same trials, rows and files as the Ray runner, one trial after another in this process.

For debugging and profiling (breakpoints, torch.profiler, py-spy work as usual), and for machines without Ray. It
takes the same arguments as `driver.run_grid` and records the same rows.
"""

from __future__ import annotations

import dataclasses

from ssagan_core.data import CategoryData
from ssagan_core.training import train

from ..results.ledger import ResultStore
from ..results.rows import FAILED, make_row, now, outcome
from ..study.design import TrialSpec
from . import faults
from .context import RunContext, device_label
from .progress import StudyView


def run_serial(
    specs: list[TrialSpec], data: dict[str, CategoryData], store: ResultStore, context: RunContext, view: StudyView
) -> dict[str, int]:
    """Train every spec in turn and record it; a trial that raises becomes a failed row and the study goes on.
    Returns how many outcomes each trial key got (one each)."""
    finished: dict[str, int] = {}
    for i, spec in enumerate(specs, 1):
        train_cfg = dataclasses.replace(spec.train, device=context.device, num_threads=context.threads)
        started, trial_id = now(), f"serial-{i:04d}"
        view.started(trial_id)
        try:
            fault = faults.fault_for(context.faults, spec.key)
            callback = (lambda p, fault=fault: faults.at_report(fault, p)) if fault else None
            result = train(spec.model, train_cfg, data[spec.category], spec.seed, callback=callback)
        except Exception as e:  # a trial's failure is a result, not the end of the study
            row = make_row(spec, context, FAILED, error=f"{type(e).__name__}: {e}", trial_id=trial_id)
            scores = history = gallery = None
        else:
            gallery = result.gallery
            device = device_label(str(result.metrics["device"]))
            row, scores, history = outcome(
                spec, context, result, data[spec.category], trial_id, node="local", started_at=started, device=device
            )
        store.add(row, scores, history, gallery)
        view.finished(row)
        finished[spec.key] = finished.get(spec.key, 0) + 1
    return finished
