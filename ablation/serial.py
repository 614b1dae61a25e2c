"""The serial runner: the same trials, rows and files as the Ray runner, one trial after another in this process.

For debugging and profiling (breakpoints, torch.profiler, py-spy work as usual), and for machines without Ray.
"""

from __future__ import annotations

import dataclasses

from rich.console import Console

from ssagan_core import CategoryData, train

from .design import TrialSpec
from .results import FAILED, ResultStore, make_row, now, outcome
from .study import Study


def run_serial(
    study: Study,
    specs: list[TrialSpec],
    data: dict[str, CategoryData],
    store: ResultStore,
    context: dict,
    console: Console,
) -> int:
    """Train every spec in turn and record it; a trial that raises becomes a failed row and the study goes on."""
    threads = max(1, int(study.resources.cpus_per_trial))
    device = "cuda" if study.resources.gpus_per_trial > 0 else "cpu"
    for i, spec in enumerate(specs, 1):
        train_cfg = dataclasses.replace(spec.train, device=device, num_threads=threads)
        started, trial_id = now(), f"serial-{i:04d}"
        try:
            result = train(spec.model, train_cfg, data[spec.category], spec.seed)
        except Exception as e:  # a trial's failure is a result, not the end of the study
            store.add(make_row(spec, context, FAILED, error=f"{type(e).__name__}: {e}", trial_id=trial_id))
            console.print(
                f"[{i}/{len(specs)}] failed  {spec.key}  {type(e).__name__}: {e}", highlight=False, markup=False
            )
            continue
        row, scores, history = outcome(
            spec, context, result, data[spec.category], trial_id, node="local", started_at=started
        )
        store.add(row, scores, history)
        console.print(f"[{i}/{len(specs)}] ok      {spec.key}  auc={row['auc']:.3f}", highlight=False, markup=False)
    return 0
