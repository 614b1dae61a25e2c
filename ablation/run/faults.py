"""Fault injection for the reliability tests: make chosen trials fail the way real ones do, inside the real trial.

`ABLATION_INJECT_FAULTS` (read by the driver when a run starts, carried to every trial in its `RunContext`, so Ray
workers started earlier see it too) is a JSON mapping of a trial-key fragment to a fault; a trial whose key contains
the fragment meets the fault. Unset (always, outside tests), nothing is injected and nothing is checked.

- `raise`: the trial raises at its first report, on every attempt (a bug in a trial).
- `oom`: the allocator's error, `torch.OutOfMemoryError`, at the first report, on every attempt.
- `nan_scores`: the trained generator's weights become NaN after its last step, so its anomaly scores are NaN (a
  model that diverged at the very end, after its last loss check): the trial must fail, never turn them into an AUC.
- `bad_checkpoint`: the first attempt writes a checkpoint that cannot be loaded and dies; the retry finds it.
- `worker_dies`: the trial's worker process exits at the first report of the trial's first run (a marker file in the
  run's storage folder remembers it across Tune experiments): the trial's actor dies as on a lost node or a killed
  process, which Tune sees as a `RayActorError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FAULTS_ENV = "ABLATION_INJECT_FAULTS"
KINDS = ("raise", "oom", "nan_scores", "bad_checkpoint", "worker_dies")


class InjectedFault(RuntimeError):
    """A failure the reliability tests asked for."""


def from_environment() -> tuple[tuple[str, str], ...]:
    """The faults to inject, as (key fragment, kind) pairs; empty when the variable is unset."""
    text = os.environ.get(FAULTS_ENV)
    if not text:
        return ()
    faults = json.loads(text)
    if not isinstance(faults, dict) or not all(kind in KINDS for kind in faults.values()):
        raise ValueError(f"{FAULTS_ENV}: a JSON mapping of trial-key fragment -> one of {', '.join(KINDS)}")
    return tuple(sorted(faults.items()))


def fault_for(faults: tuple[tuple[str, str], ...], key: str) -> str | None:
    return next((kind for fragment, kind in faults if fragment in key), None)


def at_report(kind: str | None, progress) -> None:  # progress: ssagan_core.training.Progress
    """The faults that strike while the trial trains, from its report callback."""
    if kind == "raise":
        raise InjectedFault("injected fault: the trial raised")
    if kind == "oom":
        import torch

        raise torch.OutOfMemoryError("injected: out of memory (tried to allocate 64.00 GiB)")
    if kind == "nan_scores" and progress.iteration == progress.iterations:  # the last report, just before scoring
        import torch

        with torch.no_grad():  # the state's tensors are the live weights
            for weight in progress.state()["generator"].values():
                if weight.is_floating_point():
                    weight.fill_(float("nan"))


def worker_dies(kind: str | None, marker: Path | None) -> None:
    """`worker_dies`: exit this process, once per marker (the first run of the trial)."""
    if kind != "worker_dies" or marker is None or marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    os._exit(1)  # no cleanup, no exception: the process is gone, as when its node is lost
